"""Stripe activities' plumbing: the client, idempotency records, the subscription result.

See :mod:`activities.stripe` for how every write stays idempotent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Self, TypeVar

import stripe
from sqlalchemy.orm import Session, sessionmaker

from activities.stripe_answers import (
    business_error,
    stripe_error,
)
from lifecycle.billing.catalog_sync import CatalogNotSynced, active_price
from lifecycle.billing.client import (
    StripeNotConfigured,
    make_stripe_client,
    now_ts,
)
from lifecycle.billing.mirror import upsert_invoice, upsert_subscription
from lifecycle.billing.prices import configure_price_tiers
from lifecycle.billing.shapes import (
    SubscriptionRec,
    parse_invoice,
    parse_subscription,
    to_plain,
)
from lifecycle.contracts.billing import (
    INTERVALS,
    OUTCOME_ACTIVE,
    OUTCOME_CANCELED,
    OUTCOME_PAYMENT_FAILED,
    SubscriptionResult,
)
from lifecycle.contracts.stages import ENDED_STATUSES
from lifecycle.db import insert_ignore, session_scope
from lifecycle.models import Customer, StripeObject
from lifecycle.settings import Settings

log = logging.getLogger("lifecycle.activities.stripe")

T = TypeVar("T")

class StripeBase:
    """Built once by the worker with its Stripe client and database session factory."""

    def __init__(
        self,
        client: stripe.StripeClient | None,
        session_factory: sessionmaker[Session],
        *,
        localstripe_compat: bool = False,
    ) -> None:
        self._client = client
        self.sessions = session_factory
        # localstripe answers 500 to proration_behavior and discounts; with this flag
        # (settings.stripe_localstripe_compat, for `lifecycle dev`) they are left out.
        self.localstripe_compat = localstripe_compat

    @classmethod
    def from_settings(cls, settings: Settings, session_factory: sessionmaker[Session]) -> Self:
        """The worker's instance; without LIFECYCLE_STRIPE_API_KEY every call fails with that reason."""
        configure_price_tiers(settings.stripe_price_tiers)  # the mirror written from results
        try:
            client = make_stripe_client(settings)
        except StripeNotConfigured:
            client = None
        return cls(client, session_factory, localstripe_compat=settings.stripe_localstripe_compat)

    # --- plumbing ----------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._client is None:
            raise business_error(
                "Stripe is not configured: set LIFECYCLE_STRIPE_API_KEY (and LIFECYCLE_STRIPE_API_BASE "
                "for localstripe)",
                "StripeNotConfigured",
            )
        try:
            return await asyncio.to_thread(fn, *args)
        except stripe.StripeError as exc:
            raise stripe_error(exc) from exc
        except CatalogNotSynced as exc:
            raise business_error(str(exc), "CatalogNotSynced") from exc

    @property
    def stripe_client(self) -> stripe.StripeClient | None:
        """The client, None when Stripe is not configured (for reads that fall back)."""
        return self._client

    @property
    def client(self) -> stripe.StripeClient:
        assert self._client is not None
        return self._client

    def _opts(self, key: str) -> stripe.RequestOptions:
        return {"idempotency_key": key}

    def _recorded(self, key: str) -> str | None:
        with session_scope(self.sessions) as session:
            row = session.get(StripeObject, key)
            return row.stripe_id if row is not None else None

    @staticmethod
    def _record(session: Session, key: str, object_type: str, stripe_id: str) -> None:
        values = dict(idempotency_key=key, object_type=object_type, stripe_id=stripe_id)
        insert_ignore(session, StripeObject, values, on=("idempotency_key",))

    def _customer_row(self, session: Session, customer_id: str) -> Customer:
        row = session.get(Customer, customer_id)
        if row is None:
            raise business_error(f"customer {customer_id!r} not found", "CustomerNotFound")
        return row

    def _result(self, rec: SubscriptionRec, outcome: str | None = None) -> SubscriptionResult:
        """Mirror the subscription as fetched now, and describe it."""
        invoice_status = None
        with session_scope(self.sessions) as session:
            res = upsert_subscription(session, rec, now_ts())
        if rec.latest_invoice:
            inv = parse_invoice(to_plain(self.client.v1.invoices.retrieve(rec.latest_invoice)))
            invoice_status = inv.status
            with session_scope(self.sessions) as session:
                upsert_invoice(session, inv, now_ts())
        if outcome is None:
            if rec.status in ("active", "trialing"):
                outcome = OUTCOME_ACTIVE
            elif rec.status in ENDED_STATUSES:
                outcome = OUTCOME_CANCELED
            else:
                outcome = OUTCOME_PAYMENT_FAILED
        return SubscriptionResult(
            outcome=outcome,
            stripe_subscription_id=rec.id,
            status=rec.status,
            plan=res.plan,
            interval=res.interval,
            amount_cents=rec.amount_cents,
            current_period_end=rec.current_period_end,
            cancel_at_period_end=rec.cancel_at_period_end,
            latest_invoice_id=rec.latest_invoice,
            latest_invoice_status=invoice_status,
        )

    def _plan_id(self, plan: str, interval: str) -> str:
        """The Stripe plan for a tier and interval; a bad one is a non-retryable refusal."""
        if interval not in INTERVALS:
            raise business_error(f"interval: expected one of {INTERVALS}, got {interval!r}")
        try:
            with session_scope(self.sessions) as session:
                return active_price(session, plan, interval).stripe_plan_id
        except KeyError as exc:  # unknown tier (the message lists the known ones)
            raise business_error(str(exc.args[0]), "UnknownPlan") from None

    def _subscription(self, sub_id: str) -> SubscriptionRec:
        return parse_subscription(to_plain(self.client.v1.subscriptions.retrieve(sub_id)))

