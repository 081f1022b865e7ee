"""Billing periods, and what metering reads about a customer to find them.

A customer's period is its live subscription's ``current_period_start/end`` when there is
one (earlier or later events fall into the periods stepped from it by the subscription's
interval), else calendar-month steps anchored on ``customers.created_at``.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from lifecycle.contracts import catalog
from lifecycle.contracts.stages import ENDED_STATUSES
from lifecycle.models import Customer, Subscription


@dataclass(frozen=True, slots=True)
class Period:
    start: dt.datetime
    end: dt.datetime

    def contains(self, at: dt.datetime) -> bool:
        return self.start <= at < self.end


@functools.lru_cache(maxsize=65536)
def add_months(anchor: dt.datetime, months: int) -> dt.datetime:
    """``anchor`` plus whole months, the day clamped to the month's end (Jan 31 + 1 = Feb 28)."""
    y, m = divmod(anchor.month - 1 + months, 12)
    year, month = anchor.year + y, m + 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)


def period_from_anchor(at: dt.datetime, anchor: dt.datetime, step_months: int = 1) -> Period:
    """The period of ``step_months`` months, stepped from ``anchor``, that contains ``at``."""
    diff = (at.year - anchor.year) * 12 + (at.month - anchor.month)
    k = diff // step_months
    start = add_months(anchor, k * step_months)
    while start > at:
        k -= 1
        start = add_months(anchor, k * step_months)
    end = add_months(anchor, (k + 1) * step_months)
    while end <= at:
        k += 1
        start, end = end, add_months(anchor, (k + 1) * step_months)
    return Period(start, end)


@dataclass(slots=True)
class CustomerInfo:
    """What metering needs to know about a customer, read once per request."""

    id: str
    plan_code: str | None  # None: on a Stripe price that maps to no tier (nothing is limited)
    stage: str
    created_at: dt.datetime
    sub_start: dt.datetime | None = None
    sub_end: dt.datetime | None = None
    sub_interval: str | None = None
    _last: Period | None = None

    @property
    def plan(self) -> catalog.Plan | None:
        return catalog.get_plan(self.plan_code) if self.plan_code else None

    def limit(self, metric: str) -> catalog.Limit | None:
        """The plan's limit on ``metric``; None when it has none or the customer has no tier."""
        plan = self.plan
        return plan.limit(metric) if plan is not None else None

    def period_at(self, at: dt.datetime) -> Period:
        last = self._last
        if last is not None and last.contains(at):
            return last
        if self.sub_start is not None and self.sub_end is not None and self.sub_end > self.sub_start:
            if self.sub_start <= at < self.sub_end:
                period = Period(self.sub_start, self.sub_end)
            else:
                step = 12 if self.sub_interval == "year" else 1
                period = period_from_anchor(at, self.sub_start, step)
        else:
            period = period_from_anchor(at, self.created_at, 1)
        self._last = period
        return period


def load_customers(session: Session, ids: Iterable[str]) -> dict[str, CustomerInfo]:
    """The customers among ``ids``, with their live subscription's period (one query)."""
    ids = list(set(ids))
    out: dict[str, CustomerInfo] = {}
    c = Customer.__table__.c
    s = Subscription.__table__.c
    conn = session.connection()
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start:chunk_start + 500]
        rows = conn.execute(
            select(c.id, c.plan_code, c.stage, c.created_at, s.current_period_start,
                   s.current_period_end, s.interval)
            .select_from(Customer.__table__.outerjoin(Subscription.__table__, and_(
                s.customer_id == c.id,
                s.status.not_in(ENDED_STATUSES),  # live: see lifecycle.contracts.stages.is_live
                s.current_period_start.is_not(None),
                s.current_period_end.is_not(None),
            )))
            .where(c.id.in_(chunk))
        )
        for row in rows:
            info = out.get(row.id)
            if info is None:
                info = out[row.id] = CustomerInfo(row.id, row.plan_code, row.stage, row.created_at)
            start = row.current_period_start
            if start is not None and (info.sub_start is None or start > info.sub_start):
                # latest wins
                info.sub_start, info.sub_end = start, row.current_period_end
                info.sub_interval = row.interval
    return out
