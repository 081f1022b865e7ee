"""The Stripe webhook event log: :func:`record_event` stores an event once by its id;
:func:`process_event` applies it (``lifecycle.billing.handlers``) and queues what the
customer's workflow must hear; the sweeper retries what is stuck (:func:`claim_stuck`).
It never calls Stripe.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.billing.charges import CHECKED_EVENTS, note_stripe_retry
from lifecycle.billing.client import LOGGER_NAME
from lifecycle.billing.event_shapes import parse_event
from lifecycle.billing.handlers import Handover, apply_event
from lifecycle.billing.shapes import parse_invoice
from lifecycle.db import insert_ignore, session_scope
from lifecycle.models import StripeEvent
from lifecycle.signal_outbox import backoff, enqueue

log = logging.getLogger(LOGGER_NAME)

def record_event(session: Session, payload: dict[str, Any]) -> bool:
    """Store a verified webhook event once; False if its id was already recorded."""
    ev = parse_event(payload)
    values = dict(
        id=ev.id,
        type=ev.type,
        created=ev.created,
        livemode=ev.livemode,
        payload=payload,
        status="received",
        attempts=0,
    )
    return insert_ignore(session, StripeEvent, values, on=("id",))


@dataclass
class ProcessOutcome:
    event_id: str
    status: str  # processed | ignored | failed | missing
    handover: Handover | None = None
    error: str | None = None


PENDING_STATUSES = ("received", "failed")  # recorded, not (yet) applied: the sweeper's work
SWEEP_MAX_BACKOFF = dt.timedelta(hours=1)  # an event that keeps failing is retried hourly


def process_event(
    factory: sessionmaker[Session], event_id: str, *, force: bool = False, engine_retries: bool = False
) -> ProcessOutcome:
    """Apply a recorded event to the mirror and mark it; never raises for bad events.

    What the customer's workflow must hear is queued in the signal outbox in the same
    transaction (``lifecycle.signal_outbox``), so a hand-over is never lost once the event
    is marked processed. An event already processed is left alone unless ``force``
    (``lifecycle stripe replay``): a redelivery and the sweeper may race, it applies once.
    ``engine_retries`` (retry mode engine): an invoice Stripe retried by itself is recorded
    and logged once (``lifecycle.billing.charges``: Smart Retries are still on).

    Events about one object often arrive together (invoice.created and
    invoice.payment_succeeded in the same second) and are processed concurrently: when
    both insert the same mirror row, the loser retries and takes the update path.
    """
    for attempt in range(3):
        try:
            return _process_once(factory, event_id, force=force, engine_retries=engine_retries)
        except IntegrityError as exc:
            if attempt == 2:
                return _failed(factory, event_id, exc)
            log.info("stripe event %s raced another writer; retrying", event_id)
        except Exception as exc:  # noqa: BLE001 - recorded with its reason, counted, replayable
            return _failed(factory, event_id, exc)
    raise AssertionError("unreachable")


def _process_once(factory: sessionmaker[Session], event_id: str, *, force: bool, engine_retries: bool) -> ProcessOutcome:
    with session_scope(factory) as session:
        row = session.get(StripeEvent, event_id, with_for_update=True)
        if row is None:
            return ProcessOutcome(event_id, "missing", error="no such event recorded")
        if row.status not in PENDING_STATUSES and not force:
            return ProcessOutcome(event_id, "already")
        ev = parse_event(row.payload)
        status, handover = apply_event(session, ev)
        if engine_retries and ev.type in CHECKED_EVENTS and ev.object.get("id"):
            note_stripe_retry(session, ev.type, parse_invoice(ev.object))
        if handover is not None:
            enqueue(session, handover.customer_id, handover.event, start_plan=handover.plan, origin="stripe")
        row.status = status
        row.error = None
        row.attempts += 1
        row.next_attempt_at = None
        row.processed_at = dt.datetime.now(dt.UTC)
        if status == "ignored":
            log.info("stripe event %s (%s) not used by the engine; acknowledged", ev.id, ev.type)
        return ProcessOutcome(event_id, status, handover)


def _failed(factory: sessionmaker[Session], event_id: str, exc: Exception) -> ProcessOutcome:
    reason = f"{type(exc).__name__}: {exc}"
    mark_failed(factory, event_id, reason)
    log.error("stripe event %s failed: %s", event_id, reason)
    return ProcessOutcome(event_id, "failed", error=reason)


def mark_failed(factory: sessionmaker[Session], event_id: str, reason: str) -> None:
    """Record why the event could not be applied; the sweeper tries again after a back-off."""
    now = dt.datetime.now(dt.UTC)
    with session_scope(factory) as session:
        row = session.get(StripeEvent, event_id)
        if row is not None:
            row.status = "failed"
            row.error = reason[:2000]
            row.attempts += 1
            row.processed_at = now
            row.next_attempt_at = now + backoff(row.attempts, SWEEP_MAX_BACKOFF)


def event_status(factory: sessionmaker[Session], event_id: str) -> str | None:
    with factory() as session:
        return session.scalar(select(StripeEvent.status).where(StripeEvent.id == event_id))


def claim_stuck(
    factory: sessionmaker[Session], *, older_than: dt.timedelta, limit: int = 100,
    now: dt.datetime | None = None,
) -> list[tuple[str, str, int]]:
    """Events received or failed more than ``older_than`` ago whose retry time has come:
    ``(id, type, attempts)``, each leased until its next back-off (two sweepers, on two
    replicas, never take the same one)."""
    now = now or dt.datetime.now(dt.UTC)
    with session_scope(factory) as session:
        stmt = (
            select(StripeEvent)
            .where(
                StripeEvent.status.in_(PENDING_STATUSES),
                StripeEvent.received_at <= now - older_than,
                (StripeEvent.next_attempt_at.is_(None)) | (StripeEvent.next_attempt_at <= now),
            )
            .order_by(StripeEvent.created, StripeEvent.received_at)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        rows = list(session.scalars(stmt))
        for row in rows:
            row.next_attempt_at = now + backoff(row.attempts + 1, SWEEP_MAX_BACKOFF)
        return [(r.id, r.type, r.attempts) for r in rows]


def recent_events(
    session: Session, *, failed_only: bool = False, stuck_after: dt.timedelta | None = None, limit: int = 20
) -> list[StripeEvent]:
    """The event log, newest first; ``stuck_after``: only events received or failed and
    still unapplied that long after receipt."""
    stmt = select(StripeEvent).order_by(StripeEvent.received_at.desc(), StripeEvent.created.desc())
    if failed_only:
        stmt = stmt.where(StripeEvent.status == "failed")
    if stuck_after is not None:
        cutoff = dt.datetime.now(dt.UTC) - stuck_after
        stmt = stmt.where(StripeEvent.status.in_(PENDING_STATUSES), StripeEvent.received_at <= cutoff)
    return list(session.scalars(stmt.limit(limit)))
