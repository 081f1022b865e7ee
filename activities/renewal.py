"""What a renewal will charge, on which card, for the renewal reminders.

Read when a reminder is about to go out (not when the renewal workflow starts), so the
email states things as they are then: a coupon applied since, a new card. The amount is
Stripe's preview of the renewal invoice (tax and discounts as they will stand then,
``activities/stripe/previews.py``); when Stripe cannot preview it (an outage, over 10 s, no
client) the mirrored subscription's amount after discounts. The card is the
default card of the card mirror.
"""

from __future__ import annotations

import asyncio
import dataclasses

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.stripe.previews import RenewalPreviews
from lifecycle.billing.cards import default_card
from lifecycle.billing.currencies import CATALOG_CURRENCY, customer_currency, subscription_currency
from lifecycle.contracts.growth import RenewalTerms, RenewalTermsInput
from lifecycle.models import Customer, Subscription


class RenewalActivities:
    def __init__(self, session_factory: sessionmaker[Session], previews: RenewalPreviews | None = None) -> None:
        self._sessions = session_factory
        self._previews = previews or RenewalPreviews(None)

    @activity.defn(name="renewal_terms")
    async def renewal_terms(self, input: RenewalTermsInput) -> RenewalTerms:
        """Stripe's preview of the renewal (else the mirrored amount after discounts) and the card."""
        terms, stripe_customer_id, sub_id = await asyncio.to_thread(self._renewal_terms, input)
        if stripe_customer_id and sub_id:
            preview = await self._previews.preview(stripe_customer_id, sub_id)
            if preview is not None:
                terms = dataclasses.replace(terms, amount_cents=preview.amount_due, currency=preview.currency,
                                            source="preview")
        return terms

    def _renewal_terms(self, input: RenewalTermsInput) -> tuple[RenewalTerms, str | None, str | None]:
        """The mirror's terms, and the Stripe customer and subscription to preview."""
        with self._sessions() as session:
            customer = session.get(Customer, input.customer_id)
            query = select(Subscription).where(Subscription.customer_id == input.customer_id)
            if input.stripe_subscription_id:
                query = query.where(Subscription.stripe_subscription_id == input.stripe_subscription_id)
            sub = session.scalars(query.order_by(Subscription.updated_at.desc(), Subscription.id.desc())).first()
            currency = (subscription_currency(session, sub) if sub else None) or customer_currency(
                session, input.customer_id) or CATALOG_CURRENCY
            terms = RenewalTerms(amount_cents=sub.amount_cents if sub else None, currency=currency,
                                 card=_card_of(session, input.customer_id))
            sub_id = sub.stripe_subscription_id if sub else input.stripe_subscription_id
            return terms, customer.stripe_customer_id if customer else None, sub_id


def _card_of(session: Session, customer_id: str) -> str | None:
    """The customer's default card from the card mirror (``lifecycle.billing.cards``: the
    one Stripe charges, ``invoice_settings.default_payment_method``); None when unknown."""
    card = default_card(session, customer_id)
    if card is None or not card.last4:
        return None
    return f"{(card.brand or 'card').title()} ending {card.last4}"
