"""Stripe prices (and legacy plans) to tiers, and the prices and products Stripe has shown
us (the ``stripe_prices`` and ``stripe_products`` records). Never calls Stripe.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.billing.client import MD_PLAN
from lifecycle.billing.shapes import PriceRec, SubscriptionRec, parse_product
from lifecycle.contracts import catalog
from lifecycle.db import insert_ignore
from lifecycle.models import PlanPrice, PlanRow, StripePrice, StripeProduct

# A Stripe price (or legacy plan) maps to a tier by the first of:
#   own_id            a plan `lifecycle stripe sync` made (plan_prices), our `lifecycle_plan`
#                     metadata on the price, or our product `lifecycle-<tier>`;
#   price_metadata    `metadata.tier` on the price;
#   product_metadata  `metadata.tier` on its product (expanded in the payload, or as the
#                     mirror knows it from product.* events and the backfill);
#   lookup_key        the price's lookup key (a legacy plan: its id) contains exactly one tier
#                     code as a whole word (words are runs of letters and digits):
#                     `business_monthly`, `enterprise-annual-2025` map; `pro_monthly` (no
#                     tier code) and `starter-to-business` (two) do not;
#   setting           LIFECYCLE_STRIPE_PRICE_TIERS (`price_abc=business,price_def=enterprise`).
# A price that maps to none is never taken for a tier: see upsert_subscription.

_PRICE_TIERS: dict[str, str] = {}
_WORD = re.compile(r"[a-z0-9]+")


def configure_price_tiers(mapping: dict[str, str]) -> None:
    """Install LIFECYCLE_STRIPE_PRICE_TIERS (validated by the settings) for this process."""
    _PRICE_TIERS.clear()
    _PRICE_TIERS.update(mapping)


def _tier_code(value: str | None) -> str | None:
    code = (value or "").strip().lower()
    return code if code in catalog.PLANS_BY_CODE else None


def tier_in_words(text: str | None) -> str | None:
    """The one tier code that is a whole word of ``text``; None for none or several."""
    words = set(_WORD.findall((text or "").lower()))
    found = [code for code in catalog.PLANS_BY_CODE if code in words]
    return found[0] if len(found) == 1 else None


def price_tier(session: Session, price: PriceRec) -> tuple[str | None, str | None]:
    """(tier, how) for a price; (None, None) when nothing maps it. Never calls Stripe."""
    own = session.scalar(select(PlanPrice.plan_code).where(PlanPrice.stripe_plan_id == price.id).limit(1))
    if own is None:
        own = _tier_code(price.metadata.get(MD_PLAN))
    if own is None and price.product_id:
        own = session.scalar(select(PlanRow.code).where(PlanRow.stripe_product_id == price.product_id))
    if own is not None:
        return own, "own_id"
    tier = _tier_code(price.metadata.get("tier"))
    if tier:
        return tier, "price_metadata"
    product_md = price.product_metadata
    if product_md is None and price.product_id:
        product = session.get(StripeProduct, price.product_id)
        product_md = dict(product.metadata_ or {}) if product is not None else {}
    tier = _tier_code((product_md or {}).get("tier"))
    if tier:
        return tier, "product_metadata"
    tier = tier_in_words(price.lookup_key or (price.id if price.object == "plan" else None))
    if tier:
        return tier, "lookup_key"
    tier = _PRICE_TIERS.get(price.id)
    if tier:
        return tier, "setting"
    return None, None


def record_price(
    session: Session, price: PriceRec, *, event_id: str | None = None, unmapped: bool = False
) -> StripePrice:
    """Remember a price seen in Stripe, with the tier it maps to now (or none) and how."""
    if price.product_id and price.product_metadata is not None:  # the product came expanded
        insert_ignore(session, StripeProduct, dict(id=price.product_id, active=True), on=("id",))
        product = session.get(StripeProduct, price.product_id)
        assert product is not None
        product.metadata_ = dict(price.product_metadata)
    tier, source = price_tier(session, price)
    now = dt.datetime.now(dt.UTC)
    # insert-or-ignore, then read: several events naming one price arrive at once
    insert_ignore(session, StripePrice, dict(id=price.id, object=price.object, first_seen_at=now, unmapped_seen=0), on=("id",))
    row = session.get(StripePrice, price.id)
    assert row is not None
    row.object = price.object
    row.product_id = price.product_id or row.product_id
    row.lookup_key = price.lookup_key or row.lookup_key
    row.nickname = price.nickname or row.nickname
    row.metadata_ = dict(price.metadata)
    row.interval = price.interval
    row.interval_count = price.interval_count
    row.unit_amount_cents = price.unit_amount_cents
    row.currency = price.currency
    row.tier, row.tier_source = tier, source
    row.last_seen_at = now
    row.last_event_id = event_id or row.last_event_id
    if unmapped and tier is None:
        row.unmapped_seen = (row.unmapped_seen or 0) + 1
    session.flush()
    return row


def record_product(session: Session, obj: dict[str, Any]) -> None:
    pid, name, metadata, active = parse_product(obj)
    insert_ignore(session, StripeProduct, dict(id=pid), on=("id",))
    row = session.get(StripeProduct, pid)
    assert row is not None
    row.name, row.metadata_, row.active = name, metadata, active
    session.flush()


@dataclass(frozen=True)
class TierResolution:
    plan: str | None
    interval: str | None
    price_id: str | None  # the item's price that decided, or the first item's
    source: str | None
    interval_count: int = 1  # every interval_count intervals (quarterly: month x3)


def resolve_tier(session: Session, rec: SubscriptionRec) -> TierResolution:
    """The tier of a subscription: its first item whose price maps to one; the engine's
    `lifecycle_plan` metadata on the subscription only when no price maps."""
    for item in rec.items:
        tier, source = price_tier(session, item.price)
        if tier is not None:
            return TierResolution(tier, item.price.interval, item.price.id, source, item.price.interval_count)
    code = _tier_code(rec.metadata.get(MD_PLAN))
    if code is not None:
        return TierResolution(code, rec.interval, rec.plan_id, "subscription_metadata", rec.interval_count)
    return TierResolution(None, rec.interval, rec.plan_id, None, rec.interval_count)


def plan_of(session: Session, rec: SubscriptionRec) -> tuple[str | None, str | None]:
    """Our tier code and interval for a Stripe subscription (see resolve_tier)."""
    res = resolve_tier(session, rec)
    return res.plan, res.interval


def tier_label(plan_code: str | None, price_id: str | None) -> str:
    """What to show for a mirrored subscription's tier: never None."""
    if plan_code:
        return plan_code
    return f"unmapped price {price_id}" if price_id else "unmapped price (none on the subscription)"
