"""The engine's own charges of an invoice, and what they say about Stripe's retries.

Each time the engine is about to charge an invoice (a dunning retry, the card-update page)
it notes the attempt under the step's key (``stripe_objects``, type ``invoice_attempt``,
committed before the pay call, so a webhook about that very charge already finds it).
Stripe counts every attempt on the invoice (``attempt_count``: its first charge, then each
retry). In retry mode ``engine`` Stripe must not retry by itself: an invoice tried more
often than its first charge plus the engine's attempts was retried by Stripe, so Smart
Retries (or a custom retry schedule) are still on in the account. That is recorded once per
invoice (the timeline entry ``stripe_retry_seen``, by the Stripe webhooks,
:func:`lifecycle.billing.webhooks.process_event`), logged, counted in ``/metrics`` and listed
in the ops digest.

A card whose last attempt on an invoice was a hard decline (an expired, lost or stolen card:
:data:`lifecycle.billing.payment_shapes.HARD_DECLINES`, as the payments mirror has it) is not charged
again on that invoice until the card itself changes: Stripe's card account updater
(``payment_method.automatically_updated``, always a change of the card), or a
``payment_method.updated`` whose ``data.previous_attributes.card`` shows a new expiry, number
or fingerprint (:data:`CARD_FIELDS`; an edit of the billing details or metadata, ours
included, leaves the card as it was and the decline standing): :func:`hard_declined_with`.
Never calls Stripe.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lifecycle.billing.client import LOGGER_NAME
from lifecycle.billing.payment_shapes import is_hard_decline
from lifecycle.billing.shapes import InvoiceRec
from lifecycle.db import add_timeline_event, insert_ignore
from lifecycle.models import Invoice, LifecycleEvent, Payment, StripeEvent, StripeObject

log = logging.getLogger(LOGGER_NAME)

ATTEMPT = "invoice_attempt"  # stripe_objects.object_type: the engine is charging this invoice
PAYMENT = "invoice_payment"  # the dunning retry's record of its charge (activities/stripe/invoices.py)
STRIPE_RETRY_SEEN = "stripe_retry_seen"  # timeline kind: Stripe retried an invoice itself
# the events whose attempt_count is compared: a failed attempt is what a Stripe retry shows
CHECKED_EVENTS = ("invoice.payment_failed",)
# the events that may say a card's details changed (a hard decline of it may not hold any more)
CARD_UPDATED = "payment_method.automatically_updated"  # the card network's update: always the card
CARD_CHANGED_EVENTS = (CARD_UPDATED, "payment_method.updated")
# the card's own fields: one of them in ``previous_attributes.card`` of ``.updated`` is a new card
CARD_FIELDS = frozenset({"exp_month", "exp_year", "last4", "fingerprint"})


def note_attempt(session: Session, key: str, invoice_id: str) -> None:
    """The engine is about to charge ``invoice_id`` under ``key`` (the caller commits first)."""
    insert_ignore(session, StripeObject, dict(idempotency_key=f"{key}:attempt", object_type=ATTEMPT,
                                              stripe_id=invoice_id), on=("idempotency_key",))


def engine_attempts(session: Session, invoice_id: str) -> int:
    """How many times the engine charged (or set out to charge) the invoice: one per step key
    (charges recorded before attempts were noted count too)."""
    rows = session.execute(
        select(StripeObject.idempotency_key, StripeObject.object_type).where(
            StripeObject.stripe_id == invoice_id, StripeObject.object_type.in_((ATTEMPT, PAYMENT))
        )
    )
    return len({key.removesuffix(":attempt") if kind == ATTEMPT else key for key, kind in rows})


def hard_declined_with(session: Session, invoice_id: str, payment_method_id: str) -> str | None:
    """The decline code if the last attempt on ``invoice_id`` with ``payment_method_id`` (the
    payments mirror) was a hard decline and the card has not changed since (an event for it,
    created no earlier than that payment, that :func:`card_changed`); else None: the card
    may be charged."""
    last = session.scalars(
        select(Payment)
        .where(Payment.stripe_invoice_id == invoice_id, Payment.payment_method_id == payment_method_id)
        .order_by(Payment.created_at.desc(), Payment.id.desc())
        .limit(1)
    ).first()
    if last is None or last.status == "succeeded" or not is_hard_decline(last.failure_code):
        return None
    since = int(last.created_at.timestamp())
    changes = session.execute(select(StripeEvent.type, StripeEvent.payload).where(
        StripeEvent.type.in_(CARD_CHANGED_EVENTS), StripeEvent.created >= since,
        StripeEvent.payload[("data", "object", "id")].as_string() == payment_method_id)).tuples()
    if any(card_changed(kind, payload) for kind, payload in changes):
        return None
    return last.failure_code


def card_changed(event_type: str, payload: dict[str, Any]) -> bool:
    """Whether a card event (:data:`CARD_CHANGED_EVENTS`) changed the card itself: the card
    account updater's always does; ``payment_method.updated`` only when
    ``data.previous_attributes.card`` names one of :data:`CARD_FIELDS` (Stripe lists there the
    old values of what changed)."""
    if event_type == CARD_UPDATED:
        return True
    previous = (payload.get("data") or {}).get("previous_attributes") or {}
    card = previous.get("card") if isinstance(previous, dict) else None
    return isinstance(card, dict) and not CARD_FIELDS.isdisjoint(card)


def note_stripe_retry(session: Session, event_type: str, rec: InvoiceRec) -> bool:
    """Retry mode engine: record (once per invoice) an invoice Stripe retried by itself; True
    the first time. Its first charge is Stripe's own (attempt 1); every later attempt must be
    the engine's."""
    if event_type not in CHECKED_EVENTS or rec.attempt_count <= 1:
        return False
    engine = engine_attempts(session, rec.id)
    if rec.attempt_count <= 1 + engine:
        return False
    customer_id = session.scalar(select(Invoice.customer_id).where(Invoice.stripe_invoice_id == rec.id))
    if customer_id is None:
        return False  # not one of our customers' invoices
    detail = {"invoice": rec.id, "attempt_count": rec.attempt_count, "engine_attempts": engine}
    if not add_timeline_event(session, key=f"stripe-retry-seen:{rec.id}", customer_id=customer_id,
                              kind=STRIPE_RETRY_SEEN, at=dt.datetime.now(dt.UTC), detail=detail):
        return False
    log.warning(
        "retry mode engine, yet Stripe retried invoice %s itself (attempt %d, the engine charged %d "
        "time(s)): turn Smart Retries off in the Stripe dashboard (docs/billing.md)",
        rec.id, rec.attempt_count, engine,
    )
    return True


@dataclass(frozen=True)
class StripeRetrySeen:
    customer_id: str
    invoice_id: str
    attempt_count: int
    engine_attempts: int
    at: dt.datetime


def stripe_retries_seen(session: Session, *, since: dt.datetime | None = None) -> list[StripeRetrySeen]:
    """The invoices Stripe retried itself in retry mode engine, oldest first."""
    stmt = select(LifecycleEvent).where(LifecycleEvent.kind == STRIPE_RETRY_SEEN)
    if since is not None:
        stmt = stmt.where(LifecycleEvent.occurred_at >= since)
    out = []
    for row in session.scalars(stmt.order_by(LifecycleEvent.occurred_at, LifecycleEvent.id)):
        d: dict[str, Any] = row.detail or {}
        out.append(StripeRetrySeen(row.customer_id, str(d.get("invoice")), int(d.get("attempt_count") or 0),
                                   int(d.get("engine_attempts") or 0), row.occurred_at))
    return out


def stripe_retries_count(session: Session) -> int:
    """How many invoices Stripe retried itself in retry mode engine (it only grows)."""
    return int(session.scalar(select(func.count()).where(LifecycleEvent.kind == STRIPE_RETRY_SEEN)) or 0)
