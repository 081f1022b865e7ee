"""Delivering the signal outbox (``lifecycle.signal_outbox``) to customer workflows.

A route commits its facts with the event queued, then calls
:meth:`Relay.deliver_customer`, which sends the customer's undelivered events in order
within the settings' deadline (``LIFECYCLE_TEMPORAL_DEADLINE_SECONDS``, 2 s). Whatever is
left (Temporal down or slow, the process killed) is sent by :meth:`Relay.round`, which
the API runs every ``LIFECYCLE_SIGNAL_RELAY_INTERVAL_SECONDS``. The database is only touched in worker
threads, and no connection is held while Temporal is called.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from prometheus_client import Counter
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from lifecycle import signal_outbox
from lifecycle.settings import Settings
from lifecycle.signal_outbox import Pending
from starter.signals.send import signal_customer, start_input

log = logging.getLogger(__name__)

SIGNALS = Counter(
    "lifecycle_signal_outbox_deliveries",
    "Events from the signal outbox to customer workflows, by result",
    ["result"],  # delivered | failed
)


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: DeliveryReport) -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.errors += other.errors


class Relay:
    """Delivers the signal outbox for one process: built once (the API's lifespan, a CLI
    command) with the Temporal client, the settings and the session factory.

    After Temporal fails to answer, requests for the next ``settings.temporal_deadline_seconds``
    do not wait on it again: their events are queued at once and the relay rounds keep
    trying. So an outage costs one deadline, not one per request.
    """

    def __init__(self, client: Any, settings: Settings, factory: sessionmaker[Session]) -> None:
        self.client = client
        self.settings = settings
        self.factory = factory
        self._down_until = 0.0  # monotonic: requests skip the wait until then

    @property
    def temporal_down(self) -> bool:
        return time.monotonic() < self._down_until

    async def _send(self, row: Pending) -> None:
        start = None
        if row.start:
            start = start_input(self.settings, row.customer_id, str(row.start["plan"]))
            if row.start.get("origin"):
                start.origin = str(row.start["origin"])
        deadline = self.settings.temporal_deadline_seconds
        await asyncio.wait_for(
            signal_customer(
                self.client, row.customer_id, row.event, start=start, task_queue=self.settings.task_queue,
                rpc_timeout=timedelta(seconds=deadline),
            ),
            timeout=deadline,
        )

    async def deliver(self, rows: Sequence[Pending]) -> DeliveryReport:
        """Send ``rows`` in order; a customer whose event failed gets no later one this round."""
        report = DeliveryReport()
        delivered: list[int] = []
        blocked: set[str] = set()
        for row in rows:
            if row.customer_id in blocked:
                continue
            try:
                if self.client is None:
                    raise RuntimeError("no Temporal client (the API could not connect at start)")
                await self._send(row)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - stays queued, retried with back-off
                err = "Temporal did not answer in time" if isinstance(exc, TimeoutError) else f"{exc}"
                self._down_until = time.monotonic() + self.settings.temporal_deadline_seconds
                blocked.add(row.customer_id)
                report.failed += 1
                report.errors.append(f"{row.event.event_id}: {err}")
                SIGNALS.labels("failed").inc()
                log.warning("event %s for %s queued, not delivered yet: %s", row.event.event_id, row.customer_id, err)
                await run_in_threadpool(signal_outbox.mark_failed, self.factory, row.id, err)
            else:
                delivered.append(row.id)
                SIGNALS.labels("delivered").inc()
        if delivered:
            self._down_until = 0.0
            await run_in_threadpool(signal_outbox.mark_delivered, self.factory, delivered)
        report.sent = len(delivered)
        return report

    async def deliver_customer(self, customer_id: str) -> bool:
        """Send the customer's undelivered events now, oldest first; True when none is left.

        While Temporal is known to be down this returns False at once (queued for the relay).
        """
        if self.temporal_down:
            return False
        rows = await run_in_threadpool(signal_outbox.pending_for, self.factory, customer_id)
        if not rows:
            return True
        return (await self.deliver(rows)).failed == 0

    async def round(
        self, *, older_than: timedelta = timedelta(seconds=2), due_only: bool = True
    ) -> DeliveryReport:
        """Claim and send every due event (``older_than`` leaves fresh ones to their request;
        ``due_only=False``, by hand: those backing off too)."""
        total = DeliveryReport()
        while True:
            rows = await run_in_threadpool(
                lambda: signal_outbox.claim_due(self.factory, older_than=older_than, due_only=due_only)
            )
            if not rows:
                return total
            report = await self.deliver(rows)
            total.add(report)
            if report.sent == 0:  # all failed and backed off: wait for the next round
                return total


async def run_every(interval: float, round_: Callable[[], Awaitable[Any]], name: str) -> None:
    """Forever: ``await round_()`` every ``interval`` seconds; a failed round is logged, not fatal."""
    while True:
        await asyncio.sleep(interval)
        try:
            await round_()
        except asyncio.CancelledError:
            raise
        except Exception:  # the loop must outlive a database or Temporal hiccup
            log.exception("%s round failed", name)
