"""Thresholds: crossing 80 % or 100 % of the plan's limit marks the counter and writes a row
to the ``usage_signals`` outbox, in the caller's transaction.

The mark is a conditional ``UPDATE ... WHERE crossed_X_at IS NULL``, so a line is crossed
once even when requests race across it; the caller then signals the customer's workflow
and marks the row sent (:mod:`starter.signals.usage`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from sqlalchemy import update
from sqlalchemy.orm import Session

from lifecycle.models import UsageCounter, UsageSignal
from lifecycle.usage.bulk_sql import CounterRow
from lifecycle.usage.periods import CustomerInfo
from lifecycle.usage.results import Crossing
from lifecycle.usage.signals import signal_event_id


def detect(
    session: Session,
    counters: Iterable[CounterRow],
    infos: dict[str, CustomerInfo],
    now: dt.datetime,
    *,
    refused: bool = False,
) -> list[Crossing]:
    """Mark thresholds crossed (once, race-free) and write them to the signal outbox.

    ``refused``: a hard limit just turned a request away, which counts as reaching 100 %.
    """
    crossings: list[Crossing] = []
    for counter in counters:
        cid, metric, used = counter.customer_id, counter.metric, counter.used
        p_start, p_end = counter.period_start, counter.period_end
        info = infos[cid]
        limit = info.limit(metric)
        if limit is None or limit.amount <= 0 or info.plan_code is None:
            continue
        amount = Decimal(str(limit.amount))
        reached_100 = used >= amount or (refused and limit.kind == "hard")
        reached_80 = used >= amount * Decimal("0.8") or reached_100
        fired: list[int] = []
        for th, reached, crossed, col in (
            (80, reached_80, counter.crossed_80_at, UsageCounter.crossed_80_at),
            (100, reached_100, counter.crossed_100_at, UsageCounter.crossed_100_at),
        ):
            if not reached or crossed is not None:
                continue
            res = session.execute(
                update(UsageCounter)
                .where(
                    UsageCounter.customer_id == cid,
                    UsageCounter.metric == metric,
                    UsageCounter.period_start == p_start,
                    col.is_(None),
                )
                .values({col: now})
                .returning(UsageCounter.customer_id)
            )
            if res.first() is not None:
                fired.append(th)
        # Jumping past both lines at once sends the 100 % notice only.
        if 100 in fired and 80 in fired:
            fired.remove(80)
        if p_end <= now:
            continue  # a late event for a closed period: recorded, nothing to nudge
        for th in fired:
            event_id = signal_event_id(cid, metric, p_start, th)
            sig = UsageSignal(
                event_id=event_id, customer_id=cid, metric=metric, threshold=th,
                period_start=p_start, period_end=p_end, used=used, limit_amount=amount,
                limit_kind=limit.kind, plan_code=info.plan_code, crossed_at=now,
                attempts=0,
            )
            session.add(sig)
            session.flush()
            crossings.append(Crossing(
                signal_id=sig.id, event_id=event_id, customer_id=cid, metric=metric,
                threshold=th, used=used, limit=amount, limit_kind=limit.kind,
                period_start=p_start, period_end=p_end, plan_code=info.plan_code,
            ))
    return crossings
