"""Export: a customer's raw usage events for one billing period, as rows or as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterator
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.models import UsageEvent
from lifecycle.usage.periods import Period, add_months, load_customers
from lifecycle.usage.results import UsageError


def resolve_period(sessions: sessionmaker[Session], customer_id: str, spec: str) -> Period:
    """``YYYY-MM``: the billing period that starts in that month; ``YYYY-MM-DD``: the one
    containing that day; ``current``: today's."""
    with sessions() as session:
        info = load_customers(session, [customer_id]).get(customer_id)
    if info is None:
        raise UsageError("customer", f"unknown customer {customer_id!r}", status=404)
    spec = spec.strip()
    if spec == "current":
        return info.period_at(max(dt.datetime.now(dt.UTC), info.created_at))
    m = re.fullmatch(r"(\d{4})-(\d{2})(?:-(\d{2}))?", spec)
    if not m:
        raise UsageError("period", f"expected YYYY-MM, YYYY-MM-DD or 'current', got {spec!r}")
    try:
        day = dt.datetime(int(m[1]), int(m[2]), int(m[3] or 1), tzinfo=dt.UTC)
    except ValueError as exc:
        raise UsageError("period", f"{spec!r} is not a date: {exc}") from None
    if m[3]:
        return info.period_at(max(day, info.created_at))
    # the period starting within that month: the one containing the month's last start
    month_end = add_months(day, 1)
    p = info.period_at(max(month_end - dt.timedelta(microseconds=1), info.created_at))
    if p.start < day:  # no period starts in that month (e.g. yearly): take the one covering it
        return info.period_at(max(day, info.created_at))
    return p


def export_events(
    sessions: sessionmaker[Session], customer_id: str, period: Period
) -> Iterator[UsageEvent]:
    with sessions() as session:
        yield from session.scalars(
            select(UsageEvent)
            .where(UsageEvent.customer_id == customer_id,
                   UsageEvent.occurred_at >= period.start, UsageEvent.occurred_at < period.end)
            .order_by(UsageEvent.occurred_at, UsageEvent.id)
            .execution_options(yield_per=1000)
        )


def export_csv(
    sessions: sessionmaker[Session], customer_id: str, period: Period, out: IO[str]
) -> int:
    """Write the raw events of ``period`` as CSV; returns how many rows."""
    w = csv.writer(out)
    w.writerow(["event_id", "customer_id", "metric", "quantity", "occurred_at",
                "idempotency_key", "received_at", "period_start"])
    n = 0
    for e in export_events(sessions, customer_id, period):
        w.writerow([e.id, e.customer_id, e.metric, format(e.quantity.normalize(), "f"),
                    e.occurred_at.isoformat(), e.idempotency_key, e.received_at.isoformat(),
                    e.period_start.isoformat()])
        n += 1
    return n
