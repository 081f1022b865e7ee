"""The ``usage_signals`` outbox: crossings written with the usage that made them, read back
until the customer's workflow has taken them (:mod:`starter.signals.usage` sends them)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.models import UsageSignal
from lifecycle.usage.results import Crossing


def signal_event_id(customer_id: str, metric: str, period_start: dt.datetime, threshold: int) -> str:
    return f"usage:{customer_id}:{metric}:{period_start:%Y%m%d}:{threshold}"


def crossing_from_row(r: UsageSignal) -> Crossing:
    return Crossing(
        signal_id=r.id, event_id=r.event_id, customer_id=r.customer_id, metric=r.metric,
        threshold=r.threshold, used=r.used, limit=r.limit_amount, limit_kind=r.limit_kind,
        period_start=r.period_start, period_end=r.period_end, plan_code=r.plan_code,
    )


def pending(
    sessions: sessionmaker[Session], *, now: dt.datetime | None = None,
    older_than: dt.timedelta = dt.timedelta(0), limit: int = 500,
) -> list[Crossing]:
    """Crossings not yet signalled whose retry time has come."""
    now = now or dt.datetime.now(dt.UTC)
    with sessions() as session:
        rows = session.scalars(
            select(UsageSignal)
            .where(
                UsageSignal.signalled_at.is_(None),
                UsageSignal.crossed_at <= now - older_than,
                (UsageSignal.next_attempt_at.is_(None)) | (UsageSignal.next_attempt_at <= now),
            )
            .order_by(UsageSignal.id)
            .limit(limit)
        ).all()
    return [crossing_from_row(r) for r in rows]


def mark_signalled(
    sessions: sessionmaker[Session], signal_ids: Sequence[int], *, now: dt.datetime | None = None
) -> None:
    if not signal_ids:
        return
    now = now or dt.datetime.now(dt.UTC)
    with sessions() as session:
        session.execute(
            update(UsageSignal)
            .where(UsageSignal.id.in_(list(signal_ids)), UsageSignal.signalled_at.is_(None))
            .values(signalled_at=now, attempts=UsageSignal.attempts + 1, last_error=None)
        )
        session.commit()


def mark_failed(
    sessions: sessionmaker[Session], signal_id: int, error: str, *, now: dt.datetime | None = None
) -> None:
    """Count a failed attempt and back off (5 s doubling, at most an hour)."""
    now = now or dt.datetime.now(dt.UTC)
    with sessions() as session:
        sig = session.get(UsageSignal, signal_id)
        if sig is None or sig.signalled_at is not None:
            return
        sig.attempts += 1
        sig.last_error = error[:2000]
        sig.next_attempt_at = now + dt.timedelta(seconds=min(5 * 2 ** (sig.attempts - 1), 3600))
        session.commit()
