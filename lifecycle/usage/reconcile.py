"""Reconcile: recompute every counter from the raw events (the facts), report the drift, and
with ``fix`` set each drifted counter to its events' sum."""

from __future__ import annotations

import datetime as dt
import functools

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.db import insert_ignore
from lifecycle.models import UsageCounter, UsageEvent
from lifecycle.usage.periods import add_months, load_customers
from lifecycle.usage.results import ZERO, Drift, stored_quantity
from lifecycle.usage.transactions import with_retry


def reconcile_counters(
    sessions: sessionmaker[Session], *, dialect: str, fix: bool = False,
    customer_id: str | None = None,
) -> list[Drift]:
    """Recompute every counter from the raw events; report (and with ``fix`` repair) drift."""
    with sessions() as session:
        ev = UsageEvent
        sums_q = select(ev.customer_id, ev.metric, ev.period_start,
                        func.sum(ev.quantity).label("total")).group_by(
            ev.customer_id, ev.metric, ev.period_start)
        counters_q = select(UsageCounter.customer_id, UsageCounter.metric,
                            UsageCounter.period_start, UsageCounter.used)
        if customer_id is not None:
            sums_q = sums_q.where(ev.customer_id == customer_id)
            counters_q = counters_q.where(UsageCounter.customer_id == customer_id)
        actual = {(r.customer_id, r.metric, _utc(r.period_start)): stored_quantity(r.total)
                  for r in session.execute(sums_q)}
        counted = {(r.customer_id, r.metric, r.period_start): stored_quantity(r.used)
                   for r in session.execute(counters_q)}
        session.commit()
    drifts = []
    for key in sorted(set(actual) | set(counted)):
        a = actual.get(key, ZERO)
        c = counted.get(key, ZERO)
        if a != c:
            cid, metric, period_start = key
            drifts.append(Drift(cid, metric, period_start, counted=c, actual=a))
    if fix:
        for d in drifts:
            with_retry(functools.partial(fix_counter, sessions, d, dialect=dialect))
            d.fixed = True
    return drifts


def fix_counter(sessions: sessionmaker[Session], d: Drift, *, dialect: str) -> None:
    """Set one counter to the sum of its raw events, under the counter's row lock."""
    with sessions() as session:
        where = and_(UsageCounter.customer_id == d.customer_id, UsageCounter.metric == d.metric,
                     UsageCounter.period_start == d.period_start)
        q = select(UsageCounter).where(where)
        if dialect == "postgresql":
            q = q.with_for_update()
        counter = session.scalars(q).one_or_none()
        actual = session.scalar(select(func.coalesce(func.sum(UsageEvent.quantity), 0)).where(
            UsageEvent.customer_id == d.customer_id, UsageEvent.metric == d.metric,
            UsageEvent.period_start == d.period_start))
        actual = stored_quantity(actual)
        if counter is None:  # insert-or-ignore: an ingest may create it meanwhile
            info = load_customers(session, [d.customer_id]).get(d.customer_id)
            end = info.period_at(d.period_start).end if info else add_months(d.period_start, 1)
            if not insert_ignore(session, UsageCounter, dict(
                customer_id=d.customer_id, metric=d.metric, period_start=d.period_start, period_end=end,
                used=actual,
            ), on=("customer_id", "metric", "period_start")):
                session.scalars(q).one().used = actual
        else:
            counter.used = actual
        d.actual = actual
        session.commit()


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
