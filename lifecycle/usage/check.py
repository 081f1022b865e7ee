"""Check-and-record: may this customer use ``quantity`` of ``metric`` now? Answered and, when
allowed, recorded in one transaction; a hard limit refuses inside the counter's upsert."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.billing.dunning import overdue_reason, suspension
from lifecycle.db import dialect_insert
from lifecycle.models import UsageCounter, UsageEvent
from lifecycle.retention.pauses import access_pause, paused_reason
from lifecycle.usage.bulk_sql import CounterRow, insert_events
from lifecycle.usage.parsing import check_against_customer, parse_event
from lifecycle.usage.periods import load_customers
from lifecycle.usage.results import ZERO, CheckResult, EventIn
from lifecycle.usage.thresholds import detect
from lifecycle.usage.transactions import end_read_phase, with_retry

# soft (False) and hard (True) limit: the counter upsert, built once per service
Upserts = dict[bool, Any]


def build_upserts(dialect: str) -> Upserts:
    """The check's counter upsert, soft and hard, built once (bound per call)."""
    t = UsageCounter.__table__
    insert = dialect_insert(dialect)
    out = {}
    for hard in (False, True):
        stmt = insert(t).values(
            customer_id=bindparam("cid"), metric=bindparam("metric"),
            period_start=bindparam("ps", type_=t.c.period_start.type),
            period_end=bindparam("pe", type_=t.c.period_end.type),
            used=bindparam("q", type_=t.c.used.type),
            updated_at=bindparam("now", type_=t.c.updated_at.type),
        )
        out[hard] = stmt.on_conflict_do_update(
            index_elements=[t.c.customer_id, t.c.metric, t.c.period_start],
            set_={"used": t.c.used + stmt.excluded.used, "updated_at": stmt.excluded.updated_at},
            # A hard limit refuses inside the same statement that takes the row lock,
            # so racing requests can never admit more than the limit between them.
            where=(t.c.used + stmt.excluded.used <= bindparam("limit", type_=t.c.used.type))
            if hard else None,
        ).returning(t.c.customer_id, t.c.metric, t.c.period_start, t.c.period_end,
                    t.c.used, t.c.crossed_80_at, t.c.crossed_100_at)
    return out


def check_and_record(
    sessions: sessionmaker[Session],
    raw: Any,
    *,
    dialect: str,
    skew: dt.timedelta,
    upserts: Upserts,
    now: dt.datetime | None = None,
) -> CheckResult:
    """Answer allowed/refused for one metered request and record it when allowed."""
    now = now or dt.datetime.now(dt.UTC)
    ev = parse_event(raw, 0, now, skew=skew, key_required=False)
    return with_retry(lambda: record(sessions, ev, now, dialect=dialect, skew=skew, upserts=upserts))


def record(
    sessions: sessionmaker[Session], ev: EventIn, now: dt.datetime, *,
    dialect: str, skew: dt.timedelta, upserts: Upserts,
) -> CheckResult:
    """One transaction: the raw event in, the counter up unless a hard limit refuses."""
    with sessions() as session:
        infos = load_customers(session, [ev.customer_id])
        end_read_phase(session, dialect)
        info = infos.get(ev.customer_id)
        check_against_customer(ev, info, skew)
        assert info is not None
        period = info.period_at(max(ev.occurred_at, info.created_at))
        limit = info.limit(ev.metric)
        amount = Decimal(str(limit.amount)) if limit else None
        kind = limit.kind if limit else None

        def result(allowed: bool, used: Decimal, **kw: Any) -> CheckResult:
            return CheckResult(allowed, ev.customer_id, ev.metric, ev.quantity,
                               ev.idempotency_key, used, amount, kind, period, **kw)

        suspended = suspension(session, ev.customer_id)
        if suspended is not None:  # dunning: access refused until the invoices are paid
            used = used_in_period(session, ev.customer_id, ev.metric, period.start)
            session.commit()
            return result(False, used, overdue=overdue_reason(suspended))
        paused = access_pause(session, ev.customer_id, now)
        if paused is not None:  # a save offer's pause (read_only, none): no metered usage
            used = used_in_period(session, ev.customer_id, ev.metric, period.start)
            session.commit()
            return result(False, used, paused=paused_reason(paused))

        row = {
            "customer_id": ev.customer_id, "metric": ev.metric, "quantity": ev.quantity,
            "occurred_at": ev.occurred_at, "period_start": period.start,
            "idempotency_key": ev.idempotency_key, "received_at": now,
        }
        if not insert_events(session, [row], dialect):
            session.rollback()
            used = used_in_period(session, ev.customer_id, ev.metric, period.start)
            session.commit()
            return result(True, used, duplicate=True)
        t = UsageCounter.__table__
        hard = amount is not None and kind == "hard"
        counter = None
        if not (hard and ev.quantity > amount):  # type: ignore[operator]  # amount is set whenever hard is
            counter = session.execute(
                upserts[hard],
                {"cid": ev.customer_id, "metric": ev.metric, "ps": period.start,
                 "pe": period.end, "q": ev.quantity, "now": now, "limit": amount},
            ).one_or_none()
        if counter is None:  # refused: undo the raw event, remember the limit was hit
            session.execute(delete(UsageEvent).where(
                UsageEvent.customer_id == ev.customer_id,
                UsageEvent.idempotency_key == ev.idempotency_key,
            ))
            current = session.execute(
                select(t.c.customer_id, t.c.metric, t.c.period_start, t.c.period_end, t.c.used,
                       t.c.crossed_80_at, t.c.crossed_100_at).where(
                    t.c.customer_id == ev.customer_id, t.c.metric == ev.metric,
                    t.c.period_start == period.start)
            ).one_or_none()
            crossings = []
            if current is not None:
                crossings = detect(session, [CounterRow(**current._mapping)], infos, now,
                                   refused=True)
            session.commit()
            return result(False, current.used if current is not None else ZERO,
                          crossings=crossings)
        crossings = detect(session, [CounterRow(**counter._mapping)], infos, now)
        session.commit()
        return result(True, counter.used, crossings=crossings)


def used_in_period(session: Session, customer_id: str, metric: str, period_start: dt.datetime) -> Decimal:
    used = session.scalar(select(UsageCounter.used).where(
        UsageCounter.customer_id == customer_id, UsageCounter.metric == metric,
        UsageCounter.period_start == period_start))
    return used if used is not None else ZERO
