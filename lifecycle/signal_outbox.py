"""The outbox of events for customer workflows: the database side.

A writer adds its facts and :func:`enqueue` the event in the same transaction and
commits; delivery (``starter.signals.relay``) comes after, with no connection held
while Temporal is called. What is not delivered at once is claimed by the relay,
whichever replica runs it: rows are claimed with ``FOR UPDATE SKIP LOCKED`` (SQLite:
one writer) and a lease, so two relays never send the same row at the same time and a
dead one's claims come due again. A row sent twice acts once: the workflow ignores an
``event_id`` it has seen.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.contracts.customer import CustomerEvent
from lifecycle.db import insert_ignore, session_scope
from lifecycle.models import SignalOutbox

LEASE = dt.timedelta(seconds=30)  # a claimed row is due again after this if its relay died
MAX_BACKOFF = dt.timedelta(seconds=30)  # an outage is global: catch up soon after it ends


@dataclass(frozen=True)
class Pending:
    """One undelivered event, detached from its session."""

    id: int
    customer_id: str
    event: CustomerEvent
    start: dict[str, Any] | None  # {"plan": ..., "origin": ...}: signal-with-start
    attempts: int
    created_at: dt.datetime
    last_error: str | None


def _pending(row: SignalOutbox) -> Pending:
    return Pending(
        id=row.id,
        customer_id=row.customer_id,
        event=CustomerEvent(event_id=row.event_id, kind=row.kind, data=dict(row.data or {})),
        start=dict(row.start) if row.start else None,
        attempts=row.attempts,
        created_at=row.created_at,
        last_error=row.last_error,
    )


def enqueue(
    session: Session, customer_id: str, event: CustomerEvent, *, start_plan: str | None = None,
    origin: str | None = None,
) -> bool:
    """Queue ``event`` for ``customer-{id}`` in the caller's transaction; False if its id is queued already.

    ``start_plan`` set: delivered with signal-with-start, so an event for a customer
    without a running workflow starts one on that plan (``origin`` "stripe": no trial).
    """
    start = {"plan": start_plan, "origin": origin} if start_plan is not None else None
    return insert_ignore(
        session,
        SignalOutbox,
        dict(
            event_id=event.event_id[:255],
            customer_id=customer_id,
            kind=event.kind,
            data=dict(event.data),
            start=start,
            created_at=dt.datetime.now(dt.UTC),
            attempts=0,
        ),
        on=("event_id",),
    )


def pending_for(factory: sessionmaker[Session], customer_id: str) -> list[Pending]:
    """The customer's undelivered events, oldest first (delivered in this order)."""
    with factory() as session:
        rows = session.scalars(
            select(SignalOutbox)
            .where(SignalOutbox.customer_id == customer_id, SignalOutbox.delivered_at.is_(None))
            .order_by(SignalOutbox.id)
        )
        return [_pending(r) for r in rows]


def claim_due(
    factory: sessionmaker[Session], *, limit: int = 200, older_than: dt.timedelta = dt.timedelta(0),
    now: dt.datetime | None = None, due_only: bool = True,
) -> list[Pending]:
    """Claim undelivered events whose time has come (leased for :data:`LEASE`), oldest first.

    ``older_than`` leaves fresh rows to the request that wrote them; ``due_only=False``
    (delivering by hand) takes rows still backing off too.
    """
    now = now or dt.datetime.now(dt.UTC)
    with session_scope(factory) as session:
        stmt = (
            select(SignalOutbox)
            .where(SignalOutbox.delivered_at.is_(None), SignalOutbox.created_at <= now - older_than)
            .order_by(SignalOutbox.id)
            .limit(limit)
        )
        if due_only:
            stmt = stmt.where((SignalOutbox.next_attempt_at.is_(None)) | (SignalOutbox.next_attempt_at <= now))
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        rows = list(session.scalars(stmt))
        for row in rows:
            row.next_attempt_at = now + LEASE
        return [_pending(r) for r in rows]


def mark_delivered(factory: sessionmaker[Session], ids: list[int]) -> None:
    if not ids:
        return
    with session_scope(factory) as session:
        session.execute(
            update(SignalOutbox)
            .where(SignalOutbox.id.in_(ids), SignalOutbox.delivered_at.is_(None))
            .values(delivered_at=dt.datetime.now(dt.UTC), last_error=None, next_attempt_at=None)
        )


def backoff(attempts: int, cap: dt.timedelta = MAX_BACKOFF) -> dt.timedelta:
    """1 s, 2 s, 4 s, ... up to ``cap``."""
    return min(dt.timedelta(seconds=2 ** min(max(attempts - 1, 0), 30)), cap)


def mark_failed(factory: sessionmaker[Session], row_id: int, error: str) -> None:
    now = dt.datetime.now(dt.UTC)
    with session_scope(factory) as session:
        row = session.get(SignalOutbox, row_id)
        if row is None or row.delivered_at is not None:
            return
        row.attempts += 1
        row.last_error = error[:2000]
        row.next_attempt_at = now + backoff(row.attempts)


def undelivered(session: Session, *, limit: int = 50) -> list[SignalOutbox]:
    """What is still waiting for Temporal, oldest first (``lifecycle signals``)."""
    stmt = (
        select(SignalOutbox)
        .where(SignalOutbox.delivered_at.is_(None))
        .order_by(SignalOutbox.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def undelivered_count(session: Session) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(SignalOutbox).where(SignalOutbox.delivered_at.is_(None))
        )
        or 0
    )


def is_delivered(factory: sessionmaker[Session], event_id: str) -> bool:
    with factory() as session:
        at = session.scalar(select(SignalOutbox.delivered_at).where(SignalOutbox.event_id == event_id[:255]))
        return at is not None
