"""Database reads for the retention campaigns: what a renewal will charge, on which card.

Read when a reminder is about to go out (not when the renewal workflow starts), so the
email states the mirror as it is then: a coupon applied since, a new card.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from lifecycle.billing.cards import default_card
from lifecycle.billing.currencies import CATALOG_CURRENCY, customer_currency, subscription_currency
from lifecycle.contracts.retention import RenewalTerms, RenewalTermsInput
from lifecycle.models import Subscription


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
            currency = (subscription_currency(session, sub) if sub else None) or customer_currency(
                session, input.customer_id) or CATALOG_CURRENCY
            return RenewalTerms(amount_cents=sub.amount_cents if sub else None, currency=currency,
                                card=_card_of(session, input.customer_id))


def _card_of(session: Session, customer_id: str) -> str | None:
    """The customer's default card from the card mirror (``lifecycle.billing.cards``: the
    one Stripe charges, ``invoice_settings.default_payment_method``); None when unknown."""
    card = default_card(session, customer_id)
    if card is None or not card.last4:
        return None
    return f"{(card.brand or 'card').title()} ending {card.last4}"
