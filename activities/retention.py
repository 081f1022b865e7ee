"""Database reads for the retention campaigns: what a renewal will charge, on which card.

Read when a reminder is about to go out (not when the renewal workflow starts), so the
email states the mirror as it is then: a coupon applied since, a new card.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from lifecycle.contracts.retention import RenewalTerms, RenewalTermsInput
from lifecycle.models import Customer, StripeEvent, Subscription

# how many recent payment_method.attached events are read to find the customer's card
CARD_EVENTS_SCANNED = 500


class RetentionActivities:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._sessions = session_factory

    @activity.defn(name="renewal_terms")
    async def renewal_terms(self, input: RenewalTermsInput) -> RenewalTerms:
        """The mirrored subscription's amount (after discounts) and the card, if known."""
        return await asyncio.to_thread(self._renewal_terms, input)

    def _renewal_terms(self, input: RenewalTermsInput) -> RenewalTerms:
        with self._sessions() as session:
            query = select(Subscription).where(Subscription.customer_id == input.customer_id)
            if input.stripe_subscription_id:
                query = query.where(Subscription.stripe_subscription_id == input.stripe_subscription_id)
            sub = session.scalars(query.order_by(Subscription.updated_at.desc(), Subscription.id.desc())).first()
            customer = session.get(Customer, input.customer_id)
            card = _card_of(session, customer.stripe_customer_id) if customer and customer.stripe_customer_id else None
            return RenewalTerms(amount_cents=sub.amount_cents if sub else None, card=card)


def _card_of(session: Session, stripe_customer_id: str) -> str | None:
    """The last card attached to the customer, from the Stripe event log (the webhook's
    payment method object carries brand and last4); None when none was seen."""
    rows: Any = session.scalars(
        select(StripeEvent.payload)
        .where(StripeEvent.type == "payment_method.attached")
        .order_by(StripeEvent.created.desc())
        .limit(CARD_EVENTS_SCANNED)
    )
    for payload in rows:
        obj: Any = ((payload or {}).get("data") or {}).get("object") or {}
        if obj.get("customer") != stripe_customer_id:
            continue
        card = obj.get("card") or {}
        brand, last4 = card.get("brand"), card.get("last4")
        if last4:
            return f"{str(brand or 'card').title()} ending {last4}"
    return None
