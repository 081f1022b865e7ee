"""The billing mirror: what Stripe last told us of subscriptions, invoices, payments, events, prices and cards."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from lifecycle.models.base import Base, utcnow

# --- billing mirror ---------------------------------------------------------------------


class Subscription(Base):
    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stripe_subscription_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    plan_code: Mapped[str | None] = mapped_column(String(32))
    interval: Mapped[str | None] = mapped_column(String(8))
    amount_cents: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(32))
    # the Stripe price (or legacy plan) billed; with plan_code None it maps to no tier
    stripe_price_id: Mapped[str | None] = mapped_column(String(255))
    current_period_start: Mapped[dt.datetime | None]
    current_period_end: Mapped[dt.datetime | None]
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    canceled_at: Mapped[dt.datetime | None]
    # Stripe's own ordering of the object's state (event.created or object timestamp);
    # an older event never moves the mirror backwards.
    stripe_version_ts: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SubscriptionChange(Base):
    """Every plan or status change of a subscription, with its time (for MRR movements)."""

    __tablename__ = "subscription_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    plan_code: Mapped[str | None] = mapped_column(String(32))
    interval: Mapped[str | None] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(32))
    amount_cents: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    source_event_id: Mapped[str | None] = mapped_column(String(255))


class Invoice(Base):
    __tablename__ = "invoices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stripe_invoice_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[str | None] = mapped_column(String(128), index=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(32))
    amount_due_cents: Mapped[int] = mapped_column(Integer, default=0)
    amount_paid_cents: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    period_start: Mapped[dt.datetime | None]
    period_end: Mapped[dt.datetime | None]
    paid_at: Mapped[dt.datetime | None]
    stripe_version_ts: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stripe_id: Mapped[str] = mapped_column(String(64), unique=True)  # charge or payment intent
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(64), index=True)
    customer_id: Mapped[str | None] = mapped_column(String(128), index=True)
    amount_cents: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    status: Mapped[str] = mapped_column(String(32))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(Text)
    # the payment method attempted (a hard decline is not charged again on the invoice)
    payment_method_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class StripeEvent(Base):
    """Every Stripe webhook event, recorded once by its id."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # Stripe ids: up to 255
    type: Mapped[str] = mapped_column(String(100), index=True)
    created: Mapped[int] = mapped_column(BigInteger)  # Stripe's epoch seconds
    livemode: Mapped[bool] = mapped_column(Boolean, default=False)
    payload: Mapped[dict[str, Any]] = mapped_column()
    # received | processed | ignored | failed
    status: Mapped[str] = mapped_column(String(16), default="received", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[dt.datetime | None]
    # the sweeper's back-off for received / failed events (None: due now)
    next_attempt_at: Mapped[dt.datetime | None]
    # what ops should know about an event that was processed, e.g. "unmapped price price_..."
    note: Mapped[str | None] = mapped_column(Text)


class StripeProduct(Base):
    """Products seen in Stripe (product.* events, the catalog sync, the backfill): their
    metadata may map a price to a tier when the price names its product by id only."""

    __tablename__ = "stripe_products"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StripePrice(Base):
    """Every Stripe price or legacy plan the engine has seen, with the tier it maps to
    (or none) and how; `lifecycle stripe prices` lists them."""

    __tablename__ = "stripe_prices"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    object: Mapped[str] = mapped_column(String(8))  # price | plan
    product_id: Mapped[str | None] = mapped_column(String(255))
    lookup_key: Mapped[str | None] = mapped_column(String(255))
    nickname: Mapped[str | None] = mapped_column(String(255))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    interval: Mapped[str | None] = mapped_column(String(8))
    interval_count: Mapped[int] = mapped_column(Integer, default=1)
    unit_amount_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    tier: Mapped[str | None] = mapped_column(String(32))
    # own_id | price_metadata | product_metadata | lookup_key | setting | subscription_metadata
    tier_source: Mapped[str | None] = mapped_column(String(32))
    unmapped_seen: Mapped[int] = mapped_column(Integer, default=0)
    last_event_id: Mapped[str | None] = mapped_column(String(255))
    first_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class StripeObject(Base):
    """The Stripe object an activity step created, recorded before it is used.

    A retry (after a crash between Stripe's answer and our commit) looks here, then
    in Stripe by metadata, before it writes again.
    """

    __tablename__ = "stripe_objects"

    idempotency_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    object_type: Mapped[str] = mapped_column(String(32))
    stripe_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --- cards (pre-dunning, the card-update page) ------------------------------------------


class StripePaymentMethod(Base):
    """A card as Stripe last described it (``payment_method.*`` events, the card-update page).

    Kept so a ``customer.updated`` that names its new default card by id alone can be
    mirrored with the card's brand, last 4 digits and expiry without calling Stripe.
    """

    __tablename__ = "stripe_payment_methods"

    stripe_payment_method_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64), index=True)  # None: detached
    brand: Mapped[str] = mapped_column(String(32), default="")
    last4: Mapped[str] = mapped_column(String(4), default="")
    exp_month: Mapped[int] = mapped_column(Integer, default=0)
    exp_year: Mapped[int] = mapped_column(Integer, default=0)
    stripe_version_ts: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CustomerCard(Base):
    """The customer's default card on the billing mirror: what expiry reminders are about.

    ``stripe_payment_method_id`` None: no default card. Brand, last 4 and expiry are
    empty until the card's own details are known (a ``payment_method.*`` event)."""

    __tablename__ = "customer_cards"

    customer_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    stripe_payment_method_id: Mapped[str | None] = mapped_column(String(64), index=True)
    brand: Mapped[str] = mapped_column(String(32), default="")
    last4: Mapped[str] = mapped_column(String(4), default="")
    exp_month: Mapped[int] = mapped_column(Integer, default=0)
    exp_year: Mapped[int] = mapped_column(Integer, default=0)
    stripe_version_ts: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
