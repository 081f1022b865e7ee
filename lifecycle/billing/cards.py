"""The customer's default card on the mirror, and telling the entity when it changes.

Stripe names the default card on the customer (``invoice_settings.default_payment_method``,
by id) and describes each card on the payment method (brand, last 4, expiry): the two
arrive in separate events, in either order. So every card seen is kept
(``stripe_payment_methods``) and the default is resolved from it; whenever the default
card or its expiry changes, a ``billing.default_card`` event is queued for the customer's
workflow in the caller's transaction (the signal outbox), which starts, replaces or
cancels the expiry reminders. Never calls Stripe.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.billing.payment_shapes import CardRec
from lifecycle.contracts import catalog
from lifecycle.contracts.events import DefaultCard, customer_event
from lifecycle.db import insert_ignore
from lifecycle.models import Customer, CustomerCard, StripePaymentMethod
from lifecycle.signal_outbox import enqueue


@dataclass(frozen=True)
class DefaultCardView:
    """What ``GET /v1/customers/{id}`` and the card page show of the default card."""

    payment_method_id: str | None
    brand: str
    last4: str
    exp_month: int
    exp_year: int


def record_card(session: Session, rec: CardRec, version_ts: int) -> None:
    """Remember a card as Stripe describes it at ``version_ts``; refresh the default card of
    any customer whose default it is (a detached default leaves the customer with none)."""
    # insert-or-ignore, then read: Stripe sends payment_method.* and customer.updated at once
    insert_ignore(session, StripePaymentMethod, dict(stripe_payment_method_id=rec.id, stripe_version_ts=0), on=("stripe_payment_method_id",))
    row = session.get(StripePaymentMethod, rec.id)
    assert row is not None
    if row.stripe_version_ts and version_ts < row.stripe_version_ts:
        return  # older than what we know
    row.stripe_customer_id = rec.customer
    row.brand, row.last4, row.exp_month, row.exp_year = rec.brand, rec.last4, rec.exp_month, rec.exp_year
    row.stripe_version_ts = version_ts
    session.flush()
    for card in session.scalars(select(CustomerCard).where(CustomerCard.stripe_payment_method_id == rec.id)):
        before = _snapshot(card)
        if rec.customer is None:
            card.stripe_payment_method_id = None  # detached: it can no longer be charged
        _refresh(session, card, version_ts, before)


def set_default_card(session: Session, customer_id: str, payment_method_id: str | None, version_ts: int) -> None:
    """The customer's default card is now ``payment_method_id`` (None: none), as of ``version_ts``."""
    insert_ignore(session, CustomerCard, dict(customer_id=customer_id, brand="", last4="", exp_month=0,
                                              exp_year=0, stripe_version_ts=0), on=("customer_id",))
    card = session.get(CustomerCard, customer_id)
    assert card is not None
    if card.stripe_version_ts and version_ts < card.stripe_version_ts:
        return
    before = _snapshot(card)
    card.stripe_payment_method_id = payment_method_id
    _refresh(session, card, version_ts, before)


def default_card(session: Session, customer_id: str) -> DefaultCardView | None:
    card = session.get(CustomerCard, customer_id)
    if card is None or card.stripe_payment_method_id is None:
        return None
    return DefaultCardView(card.stripe_payment_method_id, card.brand, card.last4, card.exp_month, card.exp_year)


def _snapshot(card: CustomerCard) -> tuple[str | None, str, str, int, int]:
    return (card.stripe_payment_method_id, card.brand, card.last4, card.exp_month, card.exp_year)


def _refresh(
    session: Session, card: CustomerCard, version_ts: int, before: tuple[str | None, str, str, int, int]
) -> None:
    """Copy the default card's details onto the customer's row; tell the entity if they changed."""
    pm_id = card.stripe_payment_method_id
    known = session.get(StripePaymentMethod, pm_id) if pm_id else None
    card.stripe_version_ts = max(card.stripe_version_ts or 0, version_ts)
    if known is not None:
        card.brand, card.last4, card.exp_month, card.exp_year = (
            known.brand, known.last4, known.exp_month, known.exp_year)
    else:
        card.brand, card.last4, card.exp_month, card.exp_year = "", "", 0, 0
    if (pm_id and known is None) or _snapshot(card) == before:
        return  # unchanged, or the card's details are still to come with its payment_method event
    customer = session.get(Customer, card.customer_id)
    plan = customer.plan_code if customer is not None else catalog.DEFAULT_TRIAL_PLAN
    exp = f"{card.exp_year:04d}-{card.exp_month:02d}"
    enqueue(
        session,
        card.customer_id,
        customer_event(
            f"card:{card.customer_id}:{pm_id or 'none'}:{exp}:{version_ts}",
            DefaultCard(payment_method_id=pm_id, brand=card.brand, last4=card.last4,
                        exp_month=card.exp_month, exp_year=card.exp_year),
        ),
        start_plan=plan,
        origin="stripe",
    )
