"""Where to look a customer up in Stripe: the customer and subscription ids with links
into the dashboard (test or live by the configured key)."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.billing.dashboard import customer_url, subscription_url
from lifecycle.models import Subscription
from lifecycle.settings import Settings


class StripeLinks(BaseModel):
    customer_id: str | None = None  # cus_…
    customer_url: str | None = None
    subscription_id: str | None = None  # sub_…
    subscription_url: str | None = None


def latest_subscription_id(session: Session, customer_id: str) -> str | None:
    """The customer's newest subscription in the billing mirror."""
    return session.scalar(
        select(Subscription.stripe_subscription_id)
        .where(Subscription.customer_id == customer_id)
        .order_by(Subscription.updated_at.desc(), Subscription.id.desc())
        .limit(1)
    )


def stripe_links(settings: Settings, stripe_customer_id: str | None, stripe_subscription_id: str | None) -> StripeLinks:
    key = settings.stripe_api_key.get_secret_value()
    return StripeLinks(
        customer_id=stripe_customer_id,
        customer_url=customer_url(key, stripe_customer_id) if stripe_customer_id else None,
        subscription_id=stripe_subscription_id,
        subscription_url=subscription_url(key, stripe_subscription_id) if stripe_subscription_id else None,
    )
