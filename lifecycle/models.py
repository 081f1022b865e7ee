"""Database models (SQLAlchemy 2.0 typed ORM). The database owns facts; Temporal owns decisions.

Every table the engine needs lives here; Alembic migrations under
``lifecycle/migrations`` create them, and ``tests/test_db.py`` proves the two agree
on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on both SQLite (which stores naive) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; attach a timezone")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


Quantity = Numeric(20, 6)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSON(), Decimal: Quantity}


# --- customers and the catalog ----------------------------------------------------------


class Customer(Base):
    """A customer of the SaaS product, keyed by the product's own id."""

    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    company: Mapped[str] = mapped_column(String(200), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # None: first seen in Stripe on a price that maps to no tier (lifecycle.billing.prices)
    plan_code: Mapped[str | None] = mapped_column(ForeignKey("plans.code"))
    stage: Mapped[str] = mapped_column(String(32), default="trialing", index=True)
    trial_ends_at: Mapped[dt.datetime | None]
    payment_method_on_file: Mapped[bool] = mapped_column(Boolean, default=False)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PlanRow(Base):
    """The catalog as stored (seeded from lifecycle.contracts.catalog)."""

    __tablename__ = "plans"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    rank: Mapped[int] = mapped_column(Integer)
    monthly_price_cents: Mapped[int] = mapped_column(Integer)
    annual_price_cents: Mapped[int] = mapped_column(Integer)
    features: Mapped[dict[str, Any]] = mapped_column(default=dict)
    limits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    stripe_product_id: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PlanPrice(Base):
    """A Stripe plan (a price) for a tier and interval. Old prices are kept, marked inactive."""

    __tablename__ = "plan_prices"
    __table_args__ = (UniqueConstraint("stripe_plan_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_code: Mapped[str] = mapped_column(ForeignKey("plans.code"), index=True)
    interval: Mapped[str] = mapped_column(String(8))  # month | year
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    stripe_plan_id: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


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


# --- usage ------------------------------------------------------------------------------


class UsageEvent(Base):
    """A raw usage event, kept as the audit trail for billing disputes."""

    __tablename__ = "usage_events"
    __table_args__ = (
        UniqueConstraint("customer_id", "idempotency_key", name="uq_usage_events_key"),
        Index("ix_usage_events_period", "customer_id", "metric", "period_start"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(128))
    metric: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    occurred_at: Mapped[dt.datetime]
    period_start: Mapped[dt.datetime]
    idempotency_key: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class UsageCounter(Base):
    """Usage per customer, metric and billing period; thresholds remember when they fired."""

    __tablename__ = "usage_counters"

    customer_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    metric: Mapped[str] = mapped_column(String(64), primary_key=True)
    period_start: Mapped[dt.datetime] = mapped_column(primary_key=True)
    period_end: Mapped[dt.datetime]
    used: Mapped[Decimal] = mapped_column(Quantity, default=Decimal(0))
    crossed_80_at: Mapped[dt.datetime | None]
    crossed_100_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class UsageSignal(Base):
    """Outbox of threshold crossings to signal to the customer's workflow.

    Written in the same transaction that marks the counter crossed, so a crossing is
    never lost when Temporal is unreachable; ``signalled_at`` is set once the signal
    went out, and a retry loop re-sends the rest (the workflow dedupes by ``event_id``).
    """

    __tablename__ = "usage_signals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    metric: Mapped[str] = mapped_column(String(64))
    threshold: Mapped[int] = mapped_column(Integer)  # 80 | 100
    period_start: Mapped[dt.datetime]
    period_end: Mapped[dt.datetime]
    used: Mapped[Decimal] = mapped_column(Quantity)
    limit_amount: Mapped[Decimal] = mapped_column(Quantity)
    limit_kind: Mapped[str] = mapped_column(String(8))  # hard | soft
    plan_code: Mapped[str] = mapped_column(String(32))
    crossed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    signalled_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class SignalOutbox(Base):
    """Outbox of events for customer workflows (signup, activation, Stripe hand-overs, ...).

    A route or the Stripe intake writes its facts and the event here in one transaction,
    commits, then delivers; whatever is not delivered (Temporal down, the process killed)
    is delivered by the relay with back-off. ``event_id`` is the workflow's de-duplication
    id, unique here too, so a repeated request queues nothing twice.
    """

    __tablename__ = "signal_outbox"
    __table_args__ = (Index("ix_signal_outbox_pending", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column()
    # set: signal-with-start, a new entity on this plan ({"plan": ..., "origin": ...})
    start: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


# --- email ------------------------------------------------------------------------------


class EmailMessage(Base):
    """One email, recorded under a key unique to the workflow step that sent it."""

    __tablename__ = "email_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    customer_id: Mapped[str | None] = mapped_column(String(128), index=True)
    campaign: Mapped[str] = mapped_column(String(64), default="")
    step: Mapped[str] = mapped_column(String(64), default="")
    template: Mapped[str] = mapped_column(String(128))
    template_version: Mapped[str] = mapped_column(String(64), default="file")
    variant: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(16), default="marketing")  # or transactional
    to_address: Mapped[str] = mapped_column(String(320))
    from_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    provider: Mapped[str] = mapped_column(String(16))
    provider_message_id: Mapped[str | None] = mapped_column(String(255), index=True)
    # sending | sent | delivered | opened | clicked | bounced | dropped | failed
    status: Mapped[str] = mapped_column(String(16), default="sending", index=True)
    is_test: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    sent_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Suppression(Base):
    """An address or customer that must not receive (some) email."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("email", "reason", name="uq_suppressions_email_reason"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    customer_id: Mapped[str | None] = mapped_column(String(128), index=True)
    reason: Mapped[str] = mapped_column(String(32))  # unsubscribe | bounce | spam_report
    scope: Mapped[str] = mapped_column(String(16), default="marketing")  # marketing | all
    source: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TemplateVersion(Base):
    """A template edited without a deploy; the newest published version overrides the file."""

    __tablename__ = "template_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_template_versions_name_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    preheader: Mapped[str] = mapped_column(Text, default="")
    # The whole template file as published (extends the layout, all blocks); the columns
    # above hold its blocks for an editor. Rendering uses this.
    source: Mapped[str | None] = mapped_column(Text)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    author: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --- the customer's timeline ------------------------------------------------------------


class LifecycleEvent(Base):
    """The customer's timeline: stage changes, emails sent or held back and why, events heard."""

    __tablename__ = "lifecycle_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Unique per workflow step so an activity retry records nothing twice.
    event_key: Mapped[str] = mapped_column(String(255), unique=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # stage_changed | email_sent | email_skipped | ...
    from_stage: Mapped[str | None] = mapped_column(String(32))
    to_stage: Mapped[str | None] = mapped_column(String(32))
    campaign: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --- dunning (payment recovery) ---------------------------------------------------------


class DunningRun(Base):
    """One dunning workflow's state, saved at every change: what ``GET /v1/customers/{id}``
    shows and what the usage check reads (``suspended``), so both work while Temporal is down."""

    __tablename__ = "dunning_runs"

    workflow_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    state: Mapped[str] = mapped_column(String(32))
    since: Mapped[dt.datetime]
    started_at: Mapped[dt.datetime]
    retry_mode: Mapped[str] = mapped_column(String(16))
    # access refused by the usage check ("payment overdue") while true
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    next_retry_at: Mapped[dt.datetime | None]
    next_step: Mapped[str | None] = mapped_column(String(64))
    next_step_at: Mapped[dt.datetime | None]
    ended: Mapped[bool] = mapped_column(Boolean, default=False)
    recovered_how: Mapped[str | None] = mapped_column(String(32))
    # for the counters: suspended at some point; the end action taken (cancel, unpaid, ...)
    suspended_once: Mapped[bool] = mapped_column(Boolean, default=False)
    end_action: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_dunning_runs_suspended", "customer_id", "suspended"),)


class DunningCase(Base):
    """One invoice that went through dunning, and how it came out (the finance report)."""

    __tablename__ = "dunning_cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    invoice_id: Mapped[str] = mapped_column(String(64), unique=True)
    workflow_id: Mapped[str] = mapped_column(String(255), index=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    amount_cents: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    decline_code: Mapped[str | None] = mapped_column(String(64))
    hard_decline: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_at: Mapped[dt.datetime] = mapped_column(index=True)
    # open | recovered | closed (voided, uncollectible) | lost (dunning ended unpaid)
    outcome: Mapped[str] = mapped_column(String(16), default="open")
    how: Mapped[str | None] = mapped_column(String(32))  # retry_<n> | card_update | manual | stripe | voided | ...
    closed_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ManualPayment(Base):
    """An invoice ops marked paid out of band: who and why (``lifecycle invoice mark-paid``)."""

    __tablename__ = "manual_payments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    invoice_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[str | None] = mapped_column(String(128), index=True)
    amount_cents: Mapped[int] = mapped_column(Integer, default=0)
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
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
# --- webhooks to the product ------------------------------------------------------------


class WebhookEndpoint(Base):
    """An endpoint of the product that receives lifecycle events, signed with its own secret.

    The secret (``whsec_…``) is shown once at creation and kept here as is: the engine needs
    it to sign every delivery (Standard Webhooks, HMAC-SHA256). An endpoint that failed a
    delivery for the whole retry window is disabled (``disabled_at``); a removed one stays
    (``removed_at``) so the delivery log can still name it.
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[dt.datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    removed_at: Mapped[dt.datetime | None]


class WebhookEventRow(Base):
    """An event published for the product, once per ``event_id`` (the ``webhook-id`` header)."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[dt.datetime]
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """The delivery log: one event to one endpoint, with its last attempt.

    ``key`` is ``{event_id}:{endpoint_id}`` for the first delivery (a retried publish adds
    none) and carries a suffix for a redelivery. ``status``: pending | delivered | failed |
    skipped.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status", "status", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(400), unique=True)
    event_id: Mapped[str] = mapped_column(String(255), index=True)
    endpoint_id: Mapped[str] = mapped_column(String(32), index=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    response_head: Mapped[str | None] = mapped_column(Text)  # the response body's first bytes
    error: Mapped[str | None] = mapped_column(Text)
    redelivery_of: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[dt.datetime | None]
    delivered_at: Mapped[dt.datetime | None]
# --- ops: the audit trail ---------------------------------------------------------------


class AuditEntry(Base):
    """One ops action on one customer: who, what, why, when. Append-only: nothing in the
    engine updates or deletes a row, and a trigger refuses UPDATE and DELETE on both
    databases (migration 0012_audit_log). ``action_id`` makes a retried write record once."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_actor_occurred_at", "actor", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    action_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[dt.datetime] = mapped_column(index=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
# --- retention: cancellation requests, save offers, reactivations ---------------------------


class CancellationRequest(Base):
    """A cancellation request with its reason (and the customer's comment: written here by
    the HTTP API, never into a workflow history) and what came of it."""

    __tablename__ = "cancellation_requests"

    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    reason: Mapped[str | None] = mapped_column(String(32))
    comment: Mapped[str | None] = mapped_column(Text)
    at_once: Mapped[bool] = mapped_column(Boolean, default=False)
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(timezone=True), default=utcnow)
    # requested | refused | offered | saved | cancel_scheduled | canceled
    outcome: Mapped[str] = mapped_column(String(32), default="requested")
    detail: Mapped[str | None] = mapped_column(Text)  # a refusal's reason
    offer_id: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(timezone=True))


class SaveOfferRow(Base):
    """One save offer made in answer to a cancellation request, and its answer."""

    __tablename__ = "save_offers"

    offer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    request_id: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))  # pause | downgrade | coupon
    months: Mapped[int] = mapped_column(Integer, default=0)
    percent_off: Mapped[float] = mapped_column(Numeric(5, 2, asdecimal=False), default=0)
    plan: Mapped[str | None] = mapped_column(String(32))
    made_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))  # open | accepted | declined | expired
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(timezone=True))


class Reactivation(Base):
    """A customer won back: when, on which plan, with which offer, and the MRR it brought."""

    __tablename__ = "reactivations"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    key: Mapped[str] = mapped_column(String(255), unique=True)  # the workflow step: recorded once
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    reactivated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(timezone=True), index=True)
    plan: Mapped[str] = mapped_column(String(32))
    interval: Mapped[str] = mapped_column(String(8))
    mrr_cents: Mapped[int] = mapped_column(Integer)
    from_stage: Mapped[str] = mapped_column(String(32))  # canceled | expired | lost
    winback: Mapped[int] = mapped_column(Integer, default=0)  # the n of customer-{id}/winback/{n}
    coupon_id: Mapped[str | None] = mapped_column(String(64))
    percent_off: Mapped[float] = mapped_column(Numeric(5, 2, asdecimal=False), default=0)
    duration_months: Mapped[int] = mapped_column(Integer, default=0)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(64))
