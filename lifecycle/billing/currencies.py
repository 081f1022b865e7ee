"""In which currency a customer pays, and a tier's price in it, as the billing mirror knows
them. Never calls Stripe.

A subscription's currency is its price's (``stripe_prices``, the price it bills); a
customer's is their newest subscription's, else their newest invoice's. A tier's price in
a currency is a mirrored Stripe price mapped to the tier (or a plan ``lifecycle stripe
sync`` made) with that currency and interval; the catalog (``lifecycle.contracts.catalog``)
has US dollars only.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.contracts.money import money
from lifecycle.models import Invoice, PlanPrice, StripePrice, Subscription

CATALOG_CURRENCY = "usd"


def subscription_currency(session: Session, sub: Subscription) -> str | None:
    """The currency ``sub`` bills in (its price's); None when the price was never mirrored."""
    if not sub.stripe_price_id:
        return None
    price = session.get(StripePrice, sub.stripe_price_id)
    if price is not None and price.currency:
        return price.currency.lower()
    own = session.scalar(select(PlanPrice.currency).where(PlanPrice.stripe_plan_id == sub.stripe_price_id))
    return own.lower() if own else None


def customer_currency(session: Session, customer_id: str) -> str | None:
    """The currency the customer pays in; None when the mirror has neither subscription nor invoice."""
    subs = session.scalars(
        select(Subscription).where(Subscription.customer_id == customer_id)
        .order_by(Subscription.updated_at.desc(), Subscription.id.desc())
    )
    for sub in subs:
        found = subscription_currency(session, sub)
        if found:
            return found
    invoice = session.scalar(
        select(Invoice.currency).where(Invoice.customer_id == customer_id)
        .order_by(Invoice.updated_at.desc(), Invoice.id.desc()).limit(1)
    )
    return invoice.lower() if invoice else None


def tier_price_cents(session: Session, plan_code: str, interval: str, currency: str) -> int | None:
    """The tier's price per ``interval`` (one month, one year) in ``currency``, if Stripe has one."""
    c = currency.lower()
    stripe_price = session.scalar(
        select(StripePrice.unit_amount_cents).where(
            StripePrice.tier == plan_code, StripePrice.interval == interval,
            StripePrice.interval_count == 1, StripePrice.currency == c,
        ).order_by(StripePrice.last_seen_at.desc()).limit(1)
    )
    if stripe_price is not None:
        return int(stripe_price)
    own = session.scalar(
        select(PlanPrice.amount_cents).where(
            PlanPrice.plan_code == plan_code, PlanPrice.interval == interval,
            PlanPrice.currency == c, PlanPrice.active.is_(True),
        ).limit(1)
    )
    return int(own) if own is not None else None


def list_price(cents: int, customer_currency: str | None) -> str:
    """A catalog (US dollar) price as a customer paying in another currency reads it:
    ``US$49``, never a bare ``$`` that a Canadian or an Australian would take for theirs."""
    text = money(cents, CATALOG_CURRENCY)
    if customer_currency and customer_currency.lower() != CATALOG_CURRENCY and text.startswith("$"):
        return "US" + text
    return text
