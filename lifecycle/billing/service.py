"""Billing kernel: the plan catalog in Stripe, the Stripe event log and the billing mirror.

- :func:`sync_catalog` makes Stripe hold a product per tier and a monthly and an annual
  plan per product (the Plans API: on real Stripe a plan is also a price; localstripe has
  no Prices API). Plan ids are derived from tier, interval, amount and currency, so a
  second run finds everything and changes nothing, and a price change creates a new plan
  and retires the old one for new subscriptions (existing ones keep theirs).
- :func:`record_event` stores a webhook event once by its id; :func:`process_event`
  applies it to the mirror (subscriptions with their history, invoices, payments) and
  says what to tell the customer's workflow. It never calls Stripe.
- The mirror never moves backwards: each row keeps ``stripe_version_ts`` (the event's
  ``created``, or the fetch time for objects read from the API) and an older event is
  skipped; a canceled subscription or a paid invoice never returns to an earlier status.
- :func:`backfill` rebuilds the mirror from Stripe's list endpoints (fresh install).

Stripe calls here are synchronous (CLI and ``lifecycle dev``); activities wrap theirs in
threads.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import stripe
from prometheus_client import Counter
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.billing.shapes import (
    EventRec,
    InvoiceRec,
    PaymentRec,
    PriceRec,
    ShapeError,
    SubscriptionRec,
    as_bool,
    is_hard_decline,
    parse_customer,
    parse_event,
    parse_invoice,
    parse_payment,
    parse_price,
    parse_product,
    parse_subscription,
    to_plain,
)
from lifecycle.contracts import catalog
from lifecycle.contracts.customer import (
    CustomerEvent,
)
from lifecycle.contracts.stages import ENDED_STATUSES, stage_for_status
from lifecycle.db import insert_ignore, session_scope
from lifecycle.models import (
    Customer,
    Invoice,
    Payment,
    PlanPrice,
    PlanRow,
    StripeEvent,
    StripePrice,
    StripeProduct,
    Subscription,
    SubscriptionChange,
)
from lifecycle.settings import Settings
from lifecycle.signal_outbox import backoff, enqueue

log = logging.getLogger("lifecycle.billing.service")

# Metadata keys the engine writes on the Stripe objects it creates.
MD_CUSTOMER = "lifecycle_customer_id"
MD_PLAN = "lifecycle_plan"
MD_INTERVAL = "lifecycle_interval"
MD_KEY = "lifecycle_idempotency_key"

# The webhook events the engine acts on (the list to enable in the Stripe dashboard).
HANDLED_EVENTS = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.trial_will_end",
    "invoice.created",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.payment_action_required",
    "invoice.upcoming",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "invoice.updated",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.succeeded",
    "charge.failed",
    "checkout.session.completed",
    "payment_method.attached",
    "customer.created",
    "customer.updated",
    # the catalog as Stripe has it: products and prices whose metadata may name a tier
    "product.created",
    "product.updated",
    "price.created",
    "price.updated",
    "plan.created",
    "plan.updated",
)

UNMAPPED_PRICES = Counter(
    "lifecycle_stripe_unmapped_prices",
    "Subscriptions mirrored whose Stripe price maps to no tier (see `lifecycle stripe prices`)",
)


class StripeNotConfigured(RuntimeError):
    """Stripe settings are missing; the message names the variable."""


class CatalogNotSynced(LookupError):
    """No active Stripe plan for a tier and interval: run `lifecycle stripe sync`."""


def make_stripe_client(settings: Settings, *, max_network_retries: int = 0) -> stripe.StripeClient:
    """A StripeClient for the configured key, API base and pinned version.

    Retries are left to the caller (Temporal's retry policy for activities) unless asked.
    """
    key = settings.stripe_api_key.get_secret_value()
    if not key:
        raise StripeNotConfigured(
            "LIFECYCLE_STRIPE_API_KEY is not set: use your Stripe secret key "
            "(or any sk_test_... key with LIFECYCLE_STRIPE_API_BASE pointing at localstripe)"
        )
    base: dict[str, str] = {}
    if settings.stripe_api_base:
        base["api"] = settings.stripe_api_base
    return stripe.StripeClient(
        key,
        stripe_version=settings.stripe_api_version,
        base_addresses=base,  # type: ignore[arg-type]
        max_network_retries=max_network_retries,
    )


def now_ts() -> int:
    return int(time.time())


# --- the catalog in Stripe ------------------------------------------------------------------


def product_id_for(plan_code: str) -> str:
    return f"lifecycle-{plan_code}"


def plan_id_for(plan_code: str, interval: str, amount_cents: int, currency: str = "usd") -> str:
    return f"lifecycle-{plan_code}-{interval}-{amount_cents}-{currency}"


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.retired)


def _retrieve_or_none(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            return None
        raise


def sync_catalog(
    client: stripe.StripeClient,
    factory: sessionmaker[Session],
    plans: Iterable[catalog.Plan] = catalog.PLANS,
    currency: str = "usd",
) -> SyncReport:
    """Create or update the tiers in Stripe and record their ids; idempotent."""
    report = SyncReport()
    with session_scope(factory) as session:
        for plan in plans:
            row = session.get(PlanRow, plan.code)
            if row is None:
                raise CatalogNotSynced(
                    f"plan {plan.code!r} is not in the database: run `lifecycle db upgrade` first"
                )
            pid = product_id_for(plan.code)
            product = _retrieve_or_none(lambda pid=pid: client.v1.products.retrieve(pid))
            if product is None:
                client.v1.products.create(
                    params={
                        "id": pid,
                        "name": plan.name,
                        "description": plan.tagline or plan.name,
                        "metadata": {MD_PLAN: plan.code},
                    },
                    options={"idempotency_key": f"catalog:{pid}"},
                )
                report.created.append(pid)
            elif product.name != plan.name:
                client.v1.products.update(pid, params={"name": plan.name})
                report.updated.append(pid)
            else:
                report.unchanged.append(pid)
            row.stripe_product_id = pid

            for interval in ("month", "year"):
                amount = plan.price_cents(interval)
                want = plan_id_for(plan.code, interval, amount, currency)
                existing = _retrieve_or_none(lambda want=want: client.v1.plans.retrieve(want))
                if existing is None:
                    client.v1.plans.create(
                        params={
                            "id": want,
                            "product": pid,
                            "amount": amount,
                            "currency": currency,
                            "interval": interval,
                            "nickname": f"{plan.name} ({interval}ly)",
                            "metadata": {MD_PLAN: plan.code, MD_INTERVAL: interval},
                        },
                        options={"idempotency_key": f"catalog:{want}"},
                    )
                    report.created.append(want)
                elif not as_bool(existing.active):
                    client.v1.plans.update(want, params={"active": True})
                    report.updated.append(want)
                else:
                    report.unchanged.append(want)
                price = session.scalar(select(PlanPrice).where(PlanPrice.stripe_plan_id == want))
                if price is None:
                    price = PlanPrice(
                        plan_code=plan.code,
                        interval=interval,
                        amount_cents=amount,
                        currency=currency,
                        stripe_plan_id=want,
                    )
                    session.add(price)
                price.active = True

                # Retire every other plan of this tier and interval: known ones from the
                # database, and any in Stripe under our product (e.g. from another install).
                in_stripe = client.v1.plans.list(params={"product": pid, "limit": 100})
                others: dict[str, Any] = {}
                for p in in_stripe.auto_paging_iter():
                    if p.id != want and p.interval == interval:
                        others[p.id] = p
                for old in session.scalars(
                    select(PlanPrice).where(
                        PlanPrice.plan_code == plan.code,
                        PlanPrice.interval == interval,
                        PlanPrice.stripe_plan_id != want,
                    )
                ):
                    others.setdefault(old.stripe_plan_id, None)
                for old_id, obj in others.items():
                    old_row = session.scalar(
                        select(PlanPrice).where(PlanPrice.stripe_plan_id == old_id)
                    )
                    if old_row is None and obj is not None:
                        old_row = PlanPrice(
                            plan_code=plan.code,
                            interval=interval,
                            amount_cents=int(obj.amount or 0),
                            currency=obj.currency or currency,
                            stripe_plan_id=old_id,
                            active=False,
                        )
                        session.add(old_row)
                    stripe_active = obj is not None and as_bool(obj.active)
                    db_active = old_row is not None and old_row.active
                    if stripe_active:
                        client.v1.plans.update(old_id, params={"active": False})
                    if old_row is not None:
                        old_row.active = False
                    if stripe_active or db_active:
                        report.retired.append(old_id)
                session.flush()
    log.info(
        "stripe catalog sync: %d created, %d updated, %d retired, %d unchanged",
        len(report.created),
        len(report.updated),
        len(report.retired),
        len(report.unchanged),
    )
    return report


def active_price(session: Session, plan_code: str, interval: str) -> PlanPrice:
    """The Stripe plan new subscriptions to this tier and interval use."""
    catalog.get_plan(plan_code)  # KeyError with the list of tiers if unknown
    price = session.scalar(
        select(PlanPrice)
        .where(
            PlanPrice.plan_code == plan_code,
            PlanPrice.interval == interval,
            PlanPrice.active.is_(True),
        )
        .order_by(PlanPrice.id.desc())
    )
    if price is None:
        raise CatalogNotSynced(
            f"no Stripe plan for {plan_code}/{interval}: run `lifecycle stripe sync`"
        )
    return price


# --- prices to tiers --------------------------------------------------------------------------
#
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
        product = session.get(StripeProduct, price.product_id)
        if product is None:
            product = StripeProduct(id=price.product_id, active=True)
            session.add(product)
        product.metadata_ = dict(price.product_metadata)
    tier, source = price_tier(session, price)
    row = session.get(StripePrice, price.id)
    now = dt.datetime.now(dt.UTC)
    if row is None:
        row = StripePrice(id=price.id, first_seen_at=now, unmapped_seen=0)
        session.add(row)
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
    row = session.get(StripeProduct, pid)
    if row is None:
        row = StripeProduct(id=pid)
        session.add(row)
    row.name, row.metadata_, row.active = name, metadata, active
    session.flush()


@dataclass(frozen=True)
class TierResolution:
    plan: str | None
    interval: str | None
    price_id: str | None  # the item's price that decided, or the first item's
    source: str | None


def resolve_tier(session: Session, rec: SubscriptionRec) -> TierResolution:
    """The tier of a subscription: its first item whose price maps to one; the engine's
    `lifecycle_plan` metadata on the subscription only when no price maps."""
    for item in rec.items:
        tier, source = price_tier(session, item.price)
        if tier is not None:
            return TierResolution(tier, item.price.interval, item.price.id, source)
    code = _tier_code(rec.metadata.get(MD_PLAN))
    if code is not None:
        return TierResolution(code, rec.interval, rec.plan_id, "subscription_metadata")
    return TierResolution(None, rec.interval, rec.plan_id, None)


def plan_of(session: Session, rec: SubscriptionRec) -> tuple[str | None, str | None]:
    """Our tier code and interval for a Stripe subscription (see resolve_tier)."""
    res = resolve_tier(session, rec)
    return res.plan, res.interval


def tier_label(plan_code: str | None, price_id: str | None) -> str:
    """What to show for a mirrored subscription's tier: never None."""
    if plan_code:
        return plan_code
    return f"unmapped price {price_id}" if price_id else "unmapped price (none on the subscription)"


# --- the mirror ---------------------------------------------------------------------------

_SUB_RANK = {
    "incomplete": 0,
    "trialing": 1,
    "active": 2,
    "past_due": 2,
    "paused": 2,
    "unpaid": 3,
    "canceled": 4,
    "incomplete_expired": 4,
}
_INVOICE_RANK = {"draft": 0, "open": 1, "paid": 2, "void": 2, "uncollectible": 2}
TERMINAL_INVOICE = frozenset({"paid", "void"})


def _is_newer(
    stored_ts: int, stored_status: str, new_ts: int, new_status: str, rank: dict[str, int],
    terminal: frozenset[str],
) -> bool:
    """May an object seen at ``new_ts`` replace the one stored at ``stored_ts``?"""
    if stored_status in terminal and new_status not in terminal:
        return False
    if new_ts != stored_ts:
        return new_ts > stored_ts
    # Same second: Stripe gives no finer order, so never step back in the status order.
    return rank.get(new_status, 0) >= rank.get(stored_status, 0)


def resolve_customer(session: Session, stripe_customer_id: str | None, metadata: dict[str, str]) -> str | None:
    """Our customer id for a Stripe customer: metadata first, then the stored link."""
    cid = metadata.get(MD_CUSTOMER)
    if cid:
        row = session.get(Customer, cid)
        if row is not None:
            if stripe_customer_id and row.stripe_customer_id is None:
                row.stripe_customer_id = stripe_customer_id
            return cid
    if stripe_customer_id:
        found = session.scalar(
            select(Customer.id).where(Customer.stripe_customer_id == stripe_customer_id)
        )
        if found is not None:
            return found
    return None


@dataclass
class MirrorResult:
    customer_id: str | None
    applied: bool  # the object was newer than the mirror and was written
    changed: bool  # plan, interval, status or amount changed (a history row was added)
    adopted: bool = False  # the customer came from Stripe and was created here
    plan: str | None = None
    interval: str | None = None
    unmapped_price: str | None = None  # the price that maps to no tier, if so


def upsert_subscription(
    session: Session,
    rec: SubscriptionRec,
    version_ts: int,
    *,
    source_event_id: str | None = None,
    adopt: bool = True,
    email: str | None = None,
) -> MirrorResult:
    """Write a subscription to the mirror if it is newer; record history on change.

    A price that maps to no tier is mirrored with its amount and interval and no tier; the
    customer keeps the plan they had (a customer first seen here gets the default trial
    plan, the column needs one); it is logged, counted and listed by `lifecycle stripe prices`.
    """
    resolution = resolve_tier(session, rec)
    code, interval = resolution.plan, resolution.interval
    unmapped = rec.plan_id if code is None and rec.items else None
    for item in rec.items:
        record_price(session, item.price, event_id=source_event_id, unmapped=unmapped is not None)
    customer_id = resolve_customer(session, rec.customer, rec.metadata)
    adopted = False
    if customer_id is None:
        if not adopt:
            return MirrorResult(None, False, False, plan=code, interval=interval)
        # A subscription made outside the engine (Stripe dashboard): give it a customer.
        customer_id = rec.metadata.get(MD_CUSTOMER) or rec.customer
        existing = session.get(Customer, customer_id)
        if existing is None:
            session.add(
                Customer(
                    id=customer_id,
                    email=email or "",
                    plan_code=code or catalog.DEFAULT_TRIAL_PLAN,
                    stage=stage_for_status(rec.status),
                    stripe_customer_id=rec.customer,
                    attributes={"source": "stripe"},
                )
            )
            session.flush()
            adopted = True
        elif existing.stripe_customer_id is None:
            existing.stripe_customer_id = rec.customer

    row = session.scalar(
        select(Subscription).where(Subscription.stripe_subscription_id == rec.id)
    )
    if row is not None and not _is_newer(
        row.stripe_version_ts, row.status, version_ts, rec.status, _SUB_RANK, ENDED_STATUSES
    ):
        log.info(
            "subscription %s: kept %s (ts %d), skipped older %s (ts %d)",
            rec.id, row.status, row.stripe_version_ts, rec.status, version_ts,
        )
        return MirrorResult(
            customer_id, False, False, adopted, row.plan_code, row.interval, unmapped_price=unmapped
        )

    if unmapped:
        UNMAPPED_PRICES.inc()
        log.warning(
            "stripe subscription %s (customer %s): price %s maps to no tier; mirrored without one, "
            "the customer keeps their plan. Map it (see `lifecycle stripe prices`), then replay or backfill.",
            rec.id, customer_id, unmapped,
        )
    before = None
    if row is None:
        row = Subscription(stripe_subscription_id=rec.id, customer_id=customer_id)
        session.add(row)
    else:
        before = (row.plan_code, row.interval, row.status, row.amount_cents)
    row.customer_id = customer_id
    row.plan_code = code
    row.stripe_price_id = resolution.price_id
    row.interval = interval
    row.amount_cents = rec.amount_cents
    row.status = rec.status
    row.current_period_start = rec.current_period_start
    row.current_period_end = rec.current_period_end
    row.cancel_at_period_end = rec.cancel_at_period_end
    row.canceled_at = rec.canceled_at or (rec.ended_at if rec.status in ENDED_STATUSES else None)
    row.stripe_version_ts = version_ts
    session.flush()
    after = (row.plan_code, row.interval, row.status, row.amount_cents)
    changed = before != after
    if changed:
        session.add(
            SubscriptionChange(
                subscription_id=row.id,
                customer_id=customer_id,
                plan_code=code,
                interval=interval,
                status=rec.status,
                amount_cents=rec.amount_cents,
                changed_at=dt.datetime.fromtimestamp(version_ts, tz=dt.UTC),
                source_event_id=source_event_id,
            )
        )
    # Invoices that arrived before we knew whose they were.
    session.execute(
        update(Invoice)
        .where(Invoice.stripe_subscription_id == rec.id, Invoice.customer_id.is_(None))
        .values(customer_id=customer_id)
    )
    if code and rec.status in ("active", "trialing", "past_due"):
        cust = session.get(Customer, customer_id)
        if cust is not None and cust.plan_code != code:
            cust.plan_code = code
    return MirrorResult(customer_id, True, changed, adopted, code, interval, unmapped_price=unmapped)


def upsert_invoice(session: Session, rec: InvoiceRec, version_ts: int) -> MirrorResult:
    customer_id = resolve_customer(session, rec.customer, {})
    if customer_id is None and rec.subscription:
        customer_id = session.scalar(
            select(Subscription.customer_id).where(
                Subscription.stripe_subscription_id == rec.subscription
            )
        )
    row = session.scalar(select(Invoice).where(Invoice.stripe_invoice_id == rec.id))
    if row is not None and not _is_newer(
        row.stripe_version_ts, row.status, version_ts, rec.status, _INVOICE_RANK, TERMINAL_INVOICE
    ):
        return MirrorResult(customer_id or row.customer_id, False, False)
    before = None
    if row is None:
        row = Invoice(stripe_invoice_id=rec.id)
        session.add(row)
    else:
        before = (row.status, row.amount_paid_cents, row.attempt_count)
    row.customer_id = customer_id or row.customer_id
    row.stripe_subscription_id = rec.subscription
    row.status = rec.status
    row.amount_due_cents = rec.amount_due_cents
    row.amount_paid_cents = rec.amount_paid_cents
    row.currency = rec.currency
    row.attempt_count = rec.attempt_count
    row.period_start = rec.period_start
    row.period_end = rec.period_end
    row.paid_at = rec.paid_at or (
        dt.datetime.fromtimestamp(version_ts, tz=dt.UTC) if rec.status == "paid" and row.paid_at is None else row.paid_at
    )
    row.stripe_version_ts = version_ts
    session.flush()
    changed = before != (row.status, row.amount_paid_cents, row.attempt_count)
    return MirrorResult(row.customer_id, True, changed)


def upsert_payment(session: Session, rec: PaymentRec) -> MirrorResult:
    """One payment row per payment intent (a charge without one stands on its own)."""
    if rec.object == "charge" and rec.payment_intent:
        key = rec.payment_intent  # the intent's row carries the outcome
    else:
        key = rec.id
    customer_id = resolve_customer(session, rec.customer, {})
    row = session.scalar(select(Payment).where(Payment.stripe_id == key))
    if row is None:
        row = Payment(stripe_id=key, status=rec.status)
        session.add(row)
    elif row.status in ("succeeded",) and rec.status != "succeeded":
        return MirrorResult(customer_id, False, False)
    row.customer_id = customer_id or row.customer_id
    row.stripe_invoice_id = rec.invoice or row.stripe_invoice_id
    row.amount_cents = rec.amount_cents
    row.currency = rec.currency
    row.status = rec.status
    row.failure_code = rec.failure_code or (None if rec.status == "succeeded" else row.failure_code)
    row.failure_message = rec.failure_message or (
        None if rec.status == "succeeded" else row.failure_message
    )
    if rec.created:
        row.created_at = dt.datetime.fromtimestamp(rec.created, tz=dt.UTC)
    session.flush()
    return MirrorResult(row.customer_id, True, True)


# --- the event log --------------------------------------------------------------------------


def record_event(session: Session, payload: dict[str, Any]) -> bool:
    """Store a verified webhook event once; False if its id was already recorded."""
    ev = parse_event(payload)
    values = dict(
        id=ev.id,
        type=ev.type,
        created=ev.created,
        livemode=ev.livemode,
        payload=payload,
        status="received",
        attempts=0,
    )
    return insert_ignore(session, StripeEvent, values)


@dataclass
class Handover:
    """What the customer's workflow must hear about an event (signal-with-start)."""

    customer_id: str
    plan: str
    event: CustomerEvent


@dataclass
class ProcessOutcome:
    event_id: str
    status: str  # processed | ignored | failed | missing
    handover: Handover | None = None
    error: str | None = None


def _customer_plan(session: Session, customer_id: str) -> str:
    row = session.get(Customer, customer_id)
    return row.plan_code if row is not None else catalog.DEFAULT_TRIAL_PLAN


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def apply_event(session: Session, ev: EventRec) -> tuple[str, Handover | None]:
    """Apply one event to the mirror; returns (status, what to tell the workflow)."""
    t = ev.type
    obj = ev.object
    if t.startswith("customer.subscription."):
        rec = parse_subscription(obj)
        res = upsert_subscription(session, rec, ev.created, source_event_id=ev.id)
        _note(session, ev.id, (
            f"unmapped price {res.unmapped_price}: no tier (see `lifecycle stripe prices`)"
            if res.unmapped_price else None
        ))
        if res.customer_id is None:
            return "processed", None
        if t == "customer.subscription.trial_will_end":
            data = {"stripe_subscription_id": rec.id, "trial_end": _iso(rec.trial_end)}
            return "processed", Handover(
                res.customer_id,
                _customer_plan(session, res.customer_id),
                CustomerEvent(f"stripe:{ev.id}", "stripe.trial_will_end", data),
            )
        if not res.applied:
            return "processed", None  # older than what we know: tell nobody
        data = {
            "stripe_subscription_id": rec.id,
            "stripe_customer_id": rec.customer,
            "status": rec.status,
            "plan": res.plan,
            "interval": res.interval,
            "amount_cents": rec.amount_cents,
            "cancel_at_period_end": rec.cancel_at_period_end,
            "current_period_end": _iso(rec.current_period_end),
            "event_type": t,
            "adopted": res.adopted,
            "stripe_price_id": rec.plan_id,
        }
        return "processed", Handover(
            res.customer_id,
            res.plan or _customer_plan(session, res.customer_id),
            CustomerEvent(f"stripe:{ev.id}", "stripe.subscription", data),
        )

    if t.startswith("invoice."):
        if not obj.get("id"):  # invoice.upcoming describes a preview without an id
            inv_customer = resolve_customer(session, obj.get("customer"), {})
            if t == "invoice.upcoming" and inv_customer:
                rec_u = parse_invoice({**obj, "id": "upcoming"})
                data = {
                    "stripe_subscription_id": rec_u.subscription,
                    "amount_due_cents": rec_u.amount_due_cents,
                    "period_end": _iso(rec_u.period_end),
                    "next_payment_attempt": _iso(rec_u.next_payment_attempt),
                }
                return "processed", Handover(
                    inv_customer,
                    _customer_plan(session, inv_customer),
                    CustomerEvent(f"stripe:{ev.id}", "stripe.invoice_upcoming", data),
                )
            return "ignored", None
        rec_i = parse_invoice(obj)
        res = upsert_invoice(session, rec_i, ev.created)
        cid = res.customer_id
        if cid is None:
            return "processed", None
        plan = _customer_plan(session, cid)
        base = {
            "invoice_id": rec_i.id,
            "stripe_subscription_id": rec_i.subscription,
            "amount_due_cents": rec_i.amount_due_cents,
            "attempt_count": rec_i.attempt_count,
        }
        if t in ("invoice.paid", "invoice.payment_succeeded"):
            # Both events mean the same thing: one id, so the workflow hears it once.
            data = {**base, "amount_paid_cents": rec_i.amount_paid_cents}
            return "processed", Handover(
                cid, plan, CustomerEvent(f"stripe:invoice_paid:{rec_i.id}", "stripe.invoice_paid", data)
            )
        if t == "invoice.payment_failed":
            data = {
                **base,
                "failure_code": rec_i.failure_code,
                "hard_decline": is_hard_decline(rec_i.failure_code),
                "next_payment_attempt": _iso(rec_i.next_payment_attempt),
            }
            return "processed", Handover(
                cid, plan, CustomerEvent(f"stripe:{ev.id}", "stripe.invoice_payment_failed", data)
            )
        if t == "invoice.payment_action_required":
            data = {**base, "hosted_invoice_url": rec_i.hosted_invoice_url, "hard_decline": True}
            return "processed", Handover(
                cid, plan, CustomerEvent(f"stripe:{ev.id}", "stripe.invoice_action_required", data)
            )
        if t == "invoice.upcoming":
            data = {**base, "period_end": _iso(rec_i.period_end)}
            return "processed", Handover(
                cid, plan, CustomerEvent(f"stripe:{ev.id}", "stripe.invoice_upcoming", data)
            )
        return "processed", None

    if t.startswith("payment_intent.") or t.startswith("charge."):
        if t.endswith((".succeeded", ".payment_failed", ".failed", ".processing", ".canceled")):
            upsert_payment(session, parse_payment(obj))
            return "processed", None
        return "ignored", None

    if t == "checkout.session.completed":
        ref = obj.get("client_reference_id")
        stripe_customer = obj.get("customer")
        row = session.get(Customer, ref) if ref else None
        if row is not None:
            cid = row.id
            if row.stripe_customer_id is None and stripe_customer:
                row.stripe_customer_id = str(stripe_customer)
        else:
            cid = resolve_customer(session, stripe_customer, dict(obj.get("metadata") or {}))
        if cid is None:
            return "processed", None
        data = {
            "stripe_subscription_id": obj.get("subscription"),
            "stripe_customer_id": stripe_customer,
            "mode": obj.get("mode"),
        }
        return "processed", Handover(
            cid, _customer_plan(session, cid),
            CustomerEvent(f"stripe:{ev.id}", "stripe.checkout_completed", data),
        )

    if t == "payment_method.attached":
        cid = resolve_customer(session, obj.get("customer"), {})
        if cid is None:
            return "processed", None
        row = session.get(Customer, cid)
        if row is not None:
            row.payment_method_on_file = True
        return "processed", Handover(
            cid, _customer_plan(session, cid),
            CustomerEvent(f"stripe:{ev.id}", "payment_method_added", {"payment_method_id": obj.get("id")}),
        )

    if t in ("product.created", "product.updated"):
        record_product(session, obj)
        return "processed", None

    if t in ("price.created", "price.updated", "plan.created", "plan.updated"):
        price = parse_price(obj, kind=t.split(".", 1)[0])
        if price is not None:
            record_price(session, price, event_id=ev.id)
        return "processed", None

    if t in ("customer.created", "customer.updated"):
        rec_c = parse_customer(obj)
        cid = resolve_customer(session, rec_c.id, rec_c.metadata)  # links by metadata
        if cid is not None and rec_c.email:
            row = session.get(Customer, cid)
            if row is not None and not row.email:
                row.email = rec_c.email  # a customer adopted from Stripe learns its email
        return "processed", None

    return "ignored", None


def _note(session: Session, event_id: str, note: str | None) -> None:
    """What ops should know about a processed event (shown by `lifecycle stripe events`)."""
    row = session.get(StripeEvent, event_id)
    if row is not None:
        row.note = note


PENDING_STATUSES = ("received", "failed")  # recorded, not (yet) applied: the sweeper's work
SWEEP_MAX_BACKOFF = dt.timedelta(hours=1)  # an event that keeps failing is retried hourly


def process_event(factory: sessionmaker[Session], event_id: str, *, force: bool = False) -> ProcessOutcome:
    """Apply a recorded event to the mirror and mark it; never raises for bad events.

    What the customer's workflow must hear is queued in the signal outbox in the same
    transaction (``lifecycle.signal_outbox``), so a hand-over is never lost once the event
    is marked processed. An event already processed is left alone unless ``force``
    (``lifecycle stripe replay``): a redelivery and the sweeper may race, it applies once.

    Events about one object often arrive together (invoice.created and
    invoice.payment_succeeded in the same second) and are processed concurrently: when
    both insert the same mirror row, the loser retries and takes the update path.
    """
    for attempt in range(3):
        try:
            return _process_once(factory, event_id, force=force)
        except IntegrityError as exc:
            if attempt == 2:
                return _failed(factory, event_id, exc)
            log.info("stripe event %s raced another writer; retrying", event_id)
        except Exception as exc:  # noqa: BLE001 - recorded with its reason, counted, replayable
            return _failed(factory, event_id, exc)
    raise AssertionError("unreachable")


def _process_once(factory: sessionmaker[Session], event_id: str, *, force: bool) -> ProcessOutcome:
    with session_scope(factory) as session:
        row = session.get(StripeEvent, event_id, with_for_update=True)
        if row is None:
            return ProcessOutcome(event_id, "missing", error="no such event recorded")
        if row.status not in PENDING_STATUSES and not force:
            return ProcessOutcome(event_id, "already")
        ev = parse_event(row.payload)
        status, handover = apply_event(session, ev)
        if handover is not None:
            enqueue(session, handover.customer_id, handover.event, start_plan=handover.plan, origin="stripe")
        row.status = status
        row.error = None
        row.attempts += 1
        row.next_attempt_at = None
        row.processed_at = dt.datetime.now(dt.UTC)
        if status == "ignored":
            log.info("stripe event %s (%s) not used by the engine; acknowledged", ev.id, ev.type)
        return ProcessOutcome(event_id, status, handover)


def _failed(factory: sessionmaker[Session], event_id: str, exc: Exception) -> ProcessOutcome:
    reason = f"{type(exc).__name__}: {exc}"
    mark_failed(factory, event_id, reason)
    log.error("stripe event %s failed: %s", event_id, reason)
    return ProcessOutcome(event_id, "failed", error=reason)


def mark_failed(factory: sessionmaker[Session], event_id: str, reason: str) -> None:
    """Record why the event could not be applied; the sweeper tries again after a back-off."""
    now = dt.datetime.now(dt.UTC)
    with session_scope(factory) as session:
        row = session.get(StripeEvent, event_id)
        if row is not None:
            row.status = "failed"
            row.error = reason[:2000]
            row.attempts += 1
            row.processed_at = now
            row.next_attempt_at = now + backoff(row.attempts, SWEEP_MAX_BACKOFF)


def event_status(factory: sessionmaker[Session], event_id: str) -> str | None:
    with factory() as session:
        return session.scalar(select(StripeEvent.status).where(StripeEvent.id == event_id))


def claim_stuck(
    factory: sessionmaker[Session], *, older_than: dt.timedelta, limit: int = 100,
    now: dt.datetime | None = None,
) -> list[tuple[str, str, int]]:
    """Events received or failed more than ``older_than`` ago whose retry time has come:
    ``(id, type, attempts)``, each leased until its next back-off (two sweepers, on two
    replicas, never take the same one)."""
    now = now or dt.datetime.now(dt.UTC)
    with session_scope(factory) as session:
        stmt = (
            select(StripeEvent)
            .where(
                StripeEvent.status.in_(PENDING_STATUSES),
                StripeEvent.received_at <= now - older_than,
                (StripeEvent.next_attempt_at.is_(None)) | (StripeEvent.next_attempt_at <= now),
            )
            .order_by(StripeEvent.created, StripeEvent.received_at)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        rows = list(session.scalars(stmt))
        for row in rows:
            row.next_attempt_at = now + backoff(row.attempts + 1, SWEEP_MAX_BACKOFF)
        return [(r.id, r.type, r.attempts) for r in rows]


def recent_events(
    session: Session, *, failed_only: bool = False, stuck_after: dt.timedelta | None = None, limit: int = 20
) -> list[StripeEvent]:
    """The event log, newest first; ``stuck_after``: only events received or failed and
    still unapplied that long after receipt."""
    stmt = select(StripeEvent).order_by(StripeEvent.received_at.desc(), StripeEvent.created.desc())
    if failed_only:
        stmt = stmt.where(StripeEvent.status == "failed")
    if stuck_after is not None:
        cutoff = dt.datetime.now(dt.UTC) - stuck_after
        stmt = stmt.where(StripeEvent.status.in_(PENDING_STATUSES), StripeEvent.received_at <= cutoff)
    return list(session.scalars(stmt.limit(limit)))


# --- backfill -------------------------------------------------------------------------------


@dataclass
class BackfillReport:
    customers_linked: int = 0
    customers_adopted: int = 0
    subscriptions: int = 0
    invoices: int = 0
    payments: int = 0
    unmapped: int = 0  # subscriptions whose price maps to no tier


def backfill(client: stripe.StripeClient, factory: sessionmaker[Session]) -> BackfillReport:
    """Rebuild the mirror from Stripe's list endpoints (fresh install, or after an outage)."""
    report = BackfillReport()
    fetched = now_ts()
    emails: dict[str, str | None] = {}
    with session_scope(factory) as session:
        # the catalog first, so prices map by their product's metadata
        for obj in client.v1.products.list(params={"limit": 100}).auto_paging_iter():
            record_product(session, to_plain(obj))
        for obj in client.v1.plans.list(params={"limit": 100}).auto_paging_iter():
            price = parse_price(to_plain(obj), kind="plan")
            if price is not None:
                record_price(session, price)
        try:
            for obj in client.v1.prices.list(params={"limit": 100}).auto_paging_iter():
                price = parse_price(to_plain(obj), kind="price")
                if price is not None:
                    record_price(session, price)
        except (stripe.InvalidRequestError, stripe.APIError) as exc:  # localstripe: no Prices API (404)
            if exc.http_status != 404:
                raise
            log.info("stripe backfill: no Prices API here (404); plans only")
        for obj in client.v1.customers.list(params={"limit": 100}).auto_paging_iter():
            rec_c = parse_customer(to_plain(obj))
            emails[rec_c.id] = rec_c.email
            if resolve_customer(session, rec_c.id, rec_c.metadata) is not None:
                report.customers_linked += 1
        session.flush()
        subs = client.v1.subscriptions.list(params={"status": "all", "limit": 100})
        for obj in subs.auto_paging_iter():
            rec = parse_subscription(to_plain(obj))
            res = upsert_subscription(session, rec, fetched, email=emails.get(rec.customer))
            report.subscriptions += 1
            report.customers_adopted += int(res.adopted)
            report.unmapped += int(res.unmapped_price is not None)
        for obj in client.v1.invoices.list(params={"limit": 100}).auto_paging_iter():
            upsert_invoice(session, parse_invoice(to_plain(obj)), fetched)
            report.invoices += 1
        for obj in client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter():
            upsert_payment(session, parse_payment(to_plain(obj)))
            report.payments += 1
    return report


__all__ = [
    "BackfillReport",
    "CatalogNotSynced",
    "HANDLED_EVENTS",
    "Handover",
    "MirrorResult",
    "ProcessOutcome",
    "ShapeError",
    "StripeNotConfigured",
    "SyncReport",
    "TierResolution",
    "active_price",
    "apply_event",
    "configure_price_tiers",
    "price_tier",
    "record_price",
    "resolve_tier",
    "tier_in_words",
    "tier_label",
    "backfill",
    "make_stripe_client",
    "plan_id_for",
    "process_event",
    "record_event",
    "recent_events",
    "sync_catalog",
    "upsert_invoice",
    "upsert_payment",
    "upsert_subscription",
]
