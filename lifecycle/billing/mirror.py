"""The mirror of Stripe's objects: subscriptions (with their history), invoices, payments.

The mirror never moves backwards: each row keeps ``stripe_version_ts`` (the event's
``created``, or the fetch time for objects read from the API) and an older object is
skipped; a canceled subscription or a paid invoice never returns to an earlier status.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from prometheus_client import Counter
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from lifecycle.billing.client import LOGGER_NAME, MD_CUSTOMER
from lifecycle.billing.payment_shapes import PaymentRec
from lifecycle.billing.prices import record_price, resolve_tier
from lifecycle.billing.shapes import InvoiceRec, SubscriptionRec
from lifecycle.contracts.stages import ENDED_STATUSES, stage_for_status
from lifecycle.db import insert_ignore
from lifecycle.models import Customer, Invoice, Payment, Subscription, SubscriptionChange

log = logging.getLogger(LOGGER_NAME)

UNMAPPED_PRICES = Counter(
    "lifecycle_stripe_unmapped_prices",
    "Subscriptions mirrored whose Stripe price maps to no tier (see `lifecycle stripe prices`)",
)


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
    interval_count: int = 1  # the price bills every interval_count intervals (quarterly: month x3)


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
    customer keeps the plan they had (a customer first seen here has none: no tier, never
    Starter's limits); it is logged, counted and listed by `lifecycle stripe prices`.
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
            return MirrorResult(None, False, False, plan=code, interval=interval,
                                interval_count=resolution.interval_count)
        # A subscription made outside the engine (Stripe dashboard): give it a customer.
        customer_id = rec.metadata.get(MD_CUSTOMER) or rec.customer
        # insert-or-ignore: two events of one dashboard subscription adopt it once
        adopted = insert_ignore(session, Customer, dict(
            id=customer_id,
            email=email or "",
            plan_code=code,  # None: no tier until the price is mapped
            stage=stage_for_status(rec.status),
            stripe_customer_id=rec.customer,
            attributes={"source": "stripe"},
        ), on=("id",))
        if not adopted:
            existing = session.get(Customer, customer_id)
            if existing is not None and existing.stripe_customer_id is None:
                existing.stripe_customer_id = rec.customer

    created = insert_ignore(session, Subscription, dict(
        stripe_subscription_id=rec.id, customer_id=customer_id, status=rec.status), on=("stripe_subscription_id",))
    row = session.scalars(
        select(Subscription).where(Subscription.stripe_subscription_id == rec.id)
    ).one()
    if not created and not _is_newer(
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
    before = None if created else (row.plan_code, row.interval, row.status, row.amount_cents)
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
    return MirrorResult(customer_id, True, changed, adopted, code, interval, unmapped_price=unmapped,
                        interval_count=resolution.interval_count)


def upsert_invoice(session: Session, rec: InvoiceRec, version_ts: int) -> MirrorResult:
    customer_id = resolve_customer(session, rec.customer, {})
    if customer_id is None and rec.subscription:
        customer_id = session.scalar(
            select(Subscription.customer_id).where(
                Subscription.stripe_subscription_id == rec.subscription
            )
        )
    # insert-or-ignore, then read: invoice.* events for one invoice arrive at once
    created = insert_ignore(session, Invoice, dict(stripe_invoice_id=rec.id, status=rec.status), on=("stripe_invoice_id",))
    row = session.scalars(select(Invoice).where(Invoice.stripe_invoice_id == rec.id)).one()
    if not created and not _is_newer(
        row.stripe_version_ts, row.status, version_ts, rec.status, _INVOICE_RANK, TERMINAL_INVOICE
    ):
        return MirrorResult(customer_id or row.customer_id, False, False)
    before = None if created else (row.status, row.amount_paid_cents, row.attempt_count)
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
    created = insert_ignore(session, Payment, dict(stripe_id=key, status=rec.status), on=("stripe_id",))
    row = session.scalars(select(Payment).where(Payment.stripe_id == key)).one()
    if not created and row.status in ("succeeded",) and rec.status != "succeeded":
        return MirrorResult(customer_id, False, False)
    row.customer_id = customer_id or row.customer_id
    row.stripe_invoice_id = rec.invoice or row.stripe_invoice_id
    row.amount_cents = rec.amount_cents
    row.currency = rec.currency
    row.status = rec.status
    row.payment_method_id = rec.payment_method or row.payment_method_id
    row.failure_code = rec.failure_code or (None if rec.status == "succeeded" else row.failure_code)
    row.failure_message = rec.failure_message or (
        None if rec.status == "succeeded" else row.failure_message
    )
    if rec.created:
        row.created_at = dt.datetime.fromtimestamp(rec.created, tz=dt.UTC)
    session.flush()
    return MirrorResult(row.customer_id, True, True)
