"""Deliver usage threshold crossings from the ``usage_signals`` outbox to customer workflows.

The crossing is already committed when these run, so nothing is lost if Temporal is
unreachable: a failed signal stays in the outbox with a back-off, and
:func:`resend_pending` (the API's background loop, or ``lifecycle usage resend``) sends it
again later. The customer workflow ignores an ``event_id`` it has seen, so a signal
sent twice acts once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from lifecycle.contracts.customer import CustomerEvent
from lifecycle.contracts.events import UsageThreshold, customer_event
from lifecycle.usage import Crossing, UsageService
from starter.signals.relay import DeliveryReport, run_every
from starter.signals.send import signal_customer  # the one way to signal a customer

log = logging.getLogger(__name__)

def crossing_event(c: Crossing) -> CustomerEvent:
    """The ``usage_threshold`` event of a crossing (JSON-safe, no PII)."""
    return customer_event(
        c.event_id,
        UsageThreshold(
            metric=c.metric,
            threshold=c.threshold,
            used=_number(c.used),
            limit=_number(c.limit),
            limit_kind=c.limit_kind,
            period_start=c.period_start,
            period_end=c.period_end,
            plan=c.plan_code,
        ),
    )


def _number(value: Decimal) -> float:
    """A stored quantity as a JSON number: an int when whole (800, not 800.0)."""
    return int(value) if value == value.to_integral_value() else float(value)


async def deliver(client: Any, service: UsageService, crossings: Sequence[Crossing]) -> DeliveryReport:
    """Signal each crossing to ``customer-{id}``; mark it sent, or record the failure."""
    report = DeliveryReport()
    sent: list[int] = []
    for c in crossings:
        if client is None:
            err = "no Temporal client (the API could not connect at start)"
        else:
            try:
                await signal_customer(client, c.customer_id, crossing_event(c))
            except Exception as exc:  # any failure leaves it in the outbox for a retry
                err = f"{type(exc).__name__}: {exc}"
            else:
                sent.append(c.signal_id)
                continue
        report.failed += 1
        report.errors.append(f"{c.event_id}: {err}")
        log.warning("usage signal %s not delivered, will retry: %s", c.event_id, err)
        await asyncio.to_thread(service.mark_failed, c.signal_id, err)
    if sent:
        await asyncio.to_thread(service.mark_signalled, sent)
    report.sent = len(sent)
    return report


async def resend_pending(
    client: Any, service: UsageService, *, older_than: dt.timedelta = dt.timedelta(seconds=2)
) -> DeliveryReport:
    """Send every crossing still unsignalled whose retry time has come.

    ``older_than`` leaves fresh crossings to the request that made them.
    """
    total = DeliveryReport()
    while True:
        pending = await asyncio.to_thread(service.pending_signals, older_than=older_than)
        if not pending:
            return total
        report = await deliver(client, service, pending)
        total.add(report)
        if report.sent == 0:  # all failed and backed off; try again on the next round
            return total


async def resend_loop(get_client: Any, service: UsageService, interval: float) -> None:
    """Forever: re-send unsignalled crossings every ``interval`` seconds."""
    await run_every(interval, lambda: resend_pending(get_client(), service), "usage signal resend")
