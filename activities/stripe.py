"""Stripe activities: the only code that calls Stripe on a workflow's behalf.

Every write sends an ``Idempotency-Key`` derived from the workflow and step (the input's
``idempotency_key``). That key alone is not trusted (localstripe ignores it, and Stripe
forgets keys after 24 hours), so each step also:

1. looks in ``stripe_objects`` for the object an earlier attempt recorded under the key;
2. else looks in Stripe for an object carrying the key in its metadata (the earlier
   attempt may have crashed between Stripe's answer and our commit);
3. only then writes, and records the object under the key in the same transaction that
   links it to our rows.

Paying an invoice cannot be looked up by metadata, so before the pay call a pending marker
(the invoice's attempt count and payment intent) is committed on its own; a retry that finds
it re-reads the invoice and reports what moved instead of charging again (see
``_retry_invoice``).

Card declines when an invoice is paid are business outcomes in the result. Errors are
mapped by cause in :func:`activities.stripe_answers.stripe_error`: network errors, 429 and 5xx raise a retryable
``StripeUnavailable`` (the workflow's retry policy backs off); an invalid request (a bogus
id: the caller's input) ``StripeInvalidRequest`` and a card declined when attached
``StripeCardDeclined``, both non-retryable with Stripe's message, code and the field. The SDK is blocking, so each activity runs
its work in a thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import stripe
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.stripe_answers import (
    business_error,
    invoice_outcome,
    pay_marker,
    stripe_error,
)
from lifecycle.billing.catalog_sync import CatalogNotSynced, active_price
from lifecycle.billing.charges import PAYMENT, note_attempt
from lifecycle.billing.client import (
    MD_CUSTOMER,
    MD_INTERVAL,
    MD_KEY,
    MD_PLAN,
    StripeNotConfigured,
    make_stripe_client,
    now_ts,
)
from lifecycle.billing.mirror import upsert_invoice, upsert_subscription
from lifecycle.billing.prices import configure_price_tiers, plan_of
from lifecycle.billing.shapes import (
    SubscriptionRec,
    parse_customer,
    parse_invoice,
    parse_subscription,
    payment_method_charged,
    to_plain,
)
from lifecycle.contracts.billing import (
    INTERVALS,
    NOT_CHARGED_CARD,
    OUTCOME_ACTIVE,
    OUTCOME_CANCEL_SCHEDULED,
    OUTCOME_CANCELED,
    OUTCOME_NO_PAYMENT_METHOD,
    OUTCOME_PAYMENT_FAILED,
    OUTCOME_UNCHANGED,
    CancelInput,
    ChangePlanInput,
    CouponInput,
    CouponResult,
    EnsureCustomerInput,
    EnsureCustomerResult,
    ImportCustomerInput,
    ImportCustomerResult,
    ReactivateInput,
    RetryInvoiceInput,
    RetryInvoiceResult,
    StartSubscriptionInput,
    SubscriptionResult,
)
from lifecycle.contracts.stages import ENDED_STATUSES
from lifecycle.contracts.winback import PauseInput
from lifecycle.db import insert_ignore, session_scope
from lifecycle.models import Customer, StripeObject
from lifecycle.settings import Settings

log = logging.getLogger("lifecycle.activities.stripe")

T = TypeVar("T")


class StripeActivities:
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
    def from_settings(cls, settings: Settings, session_factory: sessionmaker[Session]) -> StripeActivities:
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
        insert_ignore(session, StripeObject, values)

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

    # --- customer --------------------------------------------------------------------------

    def _ensure_customer(self, customer_id: str, key: str) -> EnsureCustomerResult:
        with session_scope(self.sessions) as session:
            row = self._customer_row(session, customer_id)
            linked, email, name = row.stripe_customer_id, row.email, row.name
        if linked:
            return EnsureCustomerResult(linked, False, self._has_payment_method(linked))
        found = self._recorded(key)
        if found is None:
            # An earlier attempt may have created it and crashed before recording it.
            listing = self.client.v1.customers.list(params={"email": email, "limit": 100})
            for obj in listing.auto_paging_iter():
                md = to_plain(obj).get("metadata") or {}
                if md.get(MD_KEY) == key or md.get(MD_CUSTOMER) == customer_id:
                    found = obj.id
                    break
        created = False
        if found is None:
            obj = self.client.v1.customers.create(
                params={
                    "email": email,
                    "name": name or email,
                    "metadata": {MD_CUSTOMER: customer_id, MD_KEY: key},
                },
                options=self._opts(key),
            )
            found, created = obj.id, True
        with session_scope(self.sessions) as session:
            self._record(session, key, "customer", found)
            row = self._customer_row(session, customer_id)
            row.stripe_customer_id = found
        return EnsureCustomerResult(found, created, self._has_payment_method(found))

    # --- payment methods: what Stripe charges, never "the newest card" -------------------

    def _customer_default(self, stripe_customer_id: str) -> str | None:
        """The customer's default payment method (``invoice_settings``, else the legacy
        default source). Read only."""
        return parse_customer(to_plain(self.client.v1.customers.retrieve(stripe_customer_id))).default_payment_method

    def _cards(self, stripe_customer_id: str) -> list[Any]:
        """The cards attached to the customer, newest first."""
        cards = self.client.v1.payment_methods.list(
            params={"customer": stripe_customer_id, "type": "card", "limit": 100}
        ).auto_paging_iter()
        return sorted(cards, key=lambda pm: (int(pm.created or 0), pm.id), reverse=True)

    def _has_payment_method(self, stripe_customer_id: str) -> bool:
        """A default payment method, or at least a card attached (a subscription about to
        start makes it the default: :meth:`_ensure_default`)."""
        return self._customer_default(stripe_customer_id) is not None or bool(self._cards(stripe_customer_id))

    def _ensure_default(self, stripe_customer_id: str) -> str | None:
        """Before a subscription starts: the customer's default payment method. A customer
        with none but a card attached (saved without being made the default) gets that card
        (the newest) as default, so the first invoice can be charged; an existing default is
        never replaced."""
        default = self._customer_default(stripe_customer_id)
        if default is not None:
            return default
        cards = self._cards(stripe_customer_id)
        if not cards:
            return None
        self.client.v1.customers.update(
            stripe_customer_id, params={"invoice_settings": {"default_payment_method": cards[0].id}}
        )
        return str(cards[0].id)

    def _invoice_payment_method(self, invoice: dict[str, Any]) -> str | None:
        """The payment method Stripe charges this invoice with (the invoice's default, the
        subscription's, the customer's: ``payment_method_charged``). None: nothing to charge."""
        sub_id = parse_invoice(invoice).subscription
        sub = to_plain(self.client.v1.subscriptions.retrieve(sub_id)) if sub_id else None
        cus_id = invoice.get("customer")
        cus_id = cus_id.get("id") if isinstance(cus_id, dict) else cus_id
        cus = to_plain(self.client.v1.customers.retrieve(str(cus_id))) if cus_id else None
        return payment_method_charged(invoice, sub, cus)

    def _attach(self, stripe_customer_id: str, payment_method_id: str, key: str) -> None:
        """Attach a card (e.g. collected by Stripe Elements) and make it the default.

        A card already attached to this customer (reported by the payment_method.attached
        webhook) is not attached again, so nothing relies on how Stripe treats a repeat attach.
        """
        try:
            pm = self.client.v1.payment_methods.retrieve(payment_method_id)
        except stripe.InvalidRequestError:  # test tokens such as pm_card_visa, or unknown ids
            pm = None
        if pm is None or getattr(pm, "customer", None) != stripe_customer_id:
            try:
                pm = self.client.v1.payment_methods.attach(
                    payment_method_id,
                    params={"customer": stripe_customer_id},
                    options=self._opts(key),
                )
            except stripe.StripeError as exc:  # no such card, or declined: about the caller's input
                raise stripe_error(exc, field="payment_method_id") from exc
        self.client.v1.customers.update(
            stripe_customer_id, params={"invoice_settings": {"default_payment_method": pm.id}}
        )

    @activity.defn(name="stripe_ensure_customer")
    async def ensure_customer(self, input: EnsureCustomerInput) -> EnsureCustomerResult:
        """Create the customer in Stripe once (or find the one an earlier attempt made)."""
        return await self._run(self._ensure_customer, input.customer_id, input.idempotency_key)

    def _import_customer(self, input: ImportCustomerInput) -> ImportCustomerResult:
        cus = parse_customer(to_plain(self.client.v1.customers.retrieve(input.stripe_customer_id)))
        with session_scope(self.sessions) as session:
            row = self._customer_row(session, input.customer_id)
            if row.stripe_customer_id is None:
                row.stripe_customer_id = cus.id
            if not row.email and cus.email:
                row.email = cus.email
            if not row.name and cus.name:
                row.name = cus.name
            if cus.default_payment_method:
                row.payment_method_on_file = True
            return ImportCustomerResult(email_known=bool(row.email))

    @activity.defn(name="stripe_import_customer")
    async def import_customer(self, input: ImportCustomerInput) -> ImportCustomerResult:
        """Fill in a customer that first appeared in Stripe (made in the dashboard)."""
        return await self._run(self._import_customer, input)

    # --- subscriptions ---------------------------------------------------------------------

    def _find_subscription_by_key(self, stripe_customer_id: str, key: str) -> str | None:
        listing = self.client.v1.subscriptions.list(
            params={"customer": stripe_customer_id, "status": "all", "limit": 100}
        )
        for obj in listing.auto_paging_iter():
            if (to_plain(obj).get("metadata") or {}).get(MD_KEY) == key:
                return obj.id
        return None

    def _start_subscription(self, input: StartSubscriptionInput) -> SubscriptionResult:
        plan_id = self._plan_id(input.plan, input.interval)
        key = input.idempotency_key
        cus = self._ensure_customer(input.customer_id, f"{key}:customer")
        sub_id = self._recorded(key) or self._find_subscription_by_key(cus.stripe_customer_id, key)
        if sub_id is None:
            if input.payment_method_id:  # the card the customer gave: attached, made the default
                self._attach(cus.stripe_customer_id, input.payment_method_id, f"{key}:payment-method")
            if self._ensure_default(cus.stripe_customer_id) is None:
                return SubscriptionResult(
                    outcome=OUTCOME_NO_PAYMENT_METHOD,
                    plan=input.plan,
                    interval=input.interval,
                    reason="the customer has no payment method on file in Stripe",
                )
            params: dict[str, Any] = {
                "customer": cus.stripe_customer_id,
                "items": [{"plan": plan_id}],
                "payment_behavior": "allow_incomplete",
                "metadata": {
                    MD_CUSTOMER: input.customer_id,
                    MD_PLAN: input.plan,
                    MD_INTERVAL: input.interval,
                    MD_KEY: key,
                },
            }
            if input.coupon and not self.localstripe_compat:
                params["discounts"] = [{"coupon": input.coupon}]
            obj = self.client.v1.subscriptions.create(params=params, options=self._opts(key))  # type: ignore[arg-type]  # params built up as a dict
            sub_id = obj.id
        with session_scope(self.sessions) as session:
            self._record(session, key, "subscription", sub_id)
        return self._result(self._subscription(sub_id))

    @activity.defn(name="stripe_start_subscription")
    async def start_subscription(self, input: StartSubscriptionInput) -> SubscriptionResult:
        """Subscribe the customer (e.g. when the trial converts); charges the first invoice.

        A declined card is the outcome ``payment_failed`` (subscription incomplete, its
        invoice open), not an error.
        """
        return await self._run(self._start_subscription, input)

    def _change_plan(self, input: ChangePlanInput) -> SubscriptionResult:
        plan_id = self._plan_id(input.plan, input.interval)
        rec = self._subscription(input.stripe_subscription_id)
        if not rec.is_live:
            raise business_error(
                f"subscription {rec.id} is {rec.status}; start a new one instead", "SubscriptionEnded"
            )
        if rec.plan_id == plan_id or self._recorded(input.idempotency_key) is not None:
            return self._result(rec, OUTCOME_UNCHANGED if rec.plan_id == plan_id else None)
        params: dict[str, Any] = {
            "items": [{"id": rec.item_id, "plan": plan_id}],
            "proration_behavior": input.proration_behavior,
            "metadata": {MD_PLAN: input.plan, MD_INTERVAL: input.interval},
        }
        if self.localstripe_compat:
            del params["proration_behavior"]
        self.client.v1.subscriptions.update(
            rec.id, params=params, options=self._opts(input.idempotency_key)  # type: ignore[arg-type]  # params built up as a dict
        )
        with session_scope(self.sessions) as session:
            self._record(session, input.idempotency_key, "subscription_change", rec.id)
        return self._result(self._subscription(rec.id))

    @activity.defn(name="stripe_change_plan")
    async def change_plan(self, input: ChangePlanInput) -> SubscriptionResult:
        """Move a live subscription to another tier or interval.

        ``always_invoice`` (upgrades, now) charges the prorated difference at once;
        ``none`` switches without proration (downgrades, run at the period end).
        """
        return await self._run(self._change_plan, input)

    def _set_cancel_at_period_end(
        self, rec: SubscriptionRec, value: bool, key: str, outcome: str
    ) -> SubscriptionResult:
        self.client.v1.subscriptions.update(
            rec.id, params={"cancel_at_period_end": value}, options=self._opts(key)
        )
        return self._result(self._subscription(rec.id), outcome)

    def _cancel(self, input: CancelInput) -> SubscriptionResult:
        rec = self._subscription(input.stripe_subscription_id)
        if not rec.is_live:
            return self._result(rec, OUTCOME_UNCHANGED)
        if input.at_period_end:
            if rec.cancel_at_period_end:
                return self._result(rec, OUTCOME_CANCEL_SCHEDULED)
            return self._set_cancel_at_period_end(rec, True, input.idempotency_key, OUTCOME_CANCEL_SCHEDULED)
        self.client.v1.subscriptions.cancel(rec.id, options=self._opts(input.idempotency_key))
        return self._result(self._subscription(rec.id), OUTCOME_CANCELED)

    @activity.defn(name="stripe_cancel_subscription")
    async def cancel_subscription(self, input: CancelInput) -> SubscriptionResult:
        """Cancel now, or at the end of the paid period (the default)."""
        return await self._run(self._cancel, input)

    def _reactivate(self, input: ReactivateInput) -> SubscriptionResult:
        plan, interval = input.plan, input.interval
        if input.stripe_subscription_id:
            rec = self._subscription(input.stripe_subscription_id)
            if rec.is_live:
                if not rec.cancel_at_period_end:
                    return self._result(rec, OUTCOME_UNCHANGED)
                return self._set_cancel_at_period_end(rec, False, input.idempotency_key, OUTCOME_ACTIVE)
            with session_scope(self.sessions) as session:
                old_plan, old_interval = plan_of(session, rec)
            plan, interval = plan or old_plan, old_interval or interval
        if not plan:
            raise business_error("plan: required to reactivate a subscription that has ended")
        return self._start_subscription(
            StartSubscriptionInput(
                customer_id=input.customer_id,
                plan=plan,
                interval=interval or "month",
                idempotency_key=input.idempotency_key,
                coupon=input.coupon,
            )
        )

    @activity.defn(name="stripe_reactivate_subscription")
    async def reactivate_subscription(self, input: ReactivateInput) -> SubscriptionResult:
        """Undo a cancellation at period end, or subscribe again after one took effect."""
        return await self._run(self._reactivate, input)

    def _pause(self, input: PauseInput) -> SubscriptionResult:
        rec = self._subscription(input.stripe_subscription_id)
        if not rec.is_live:
            raise business_error(f"subscription {rec.id} is {rec.status}; nothing to pause", "SubscriptionEnded")
        key = input.idempotency_key
        if self._recorded(key) is None:
            # resumes_at: Stripe resumes by itself then (the workflow also resumes it, a no-op
            # there); "" clears the pause. localstripe has no pause_collection at all.
            value: Any = (
                {"behavior": "void", "resumes_at": int(input.resumes_at.timestamp())}
                if input.resumes_at is not None
                else ""
            )
            if not self.localstripe_compat:
                self.client.v1.subscriptions.update(
                    rec.id, params={"pause_collection": value}, options=self._opts(key)
                )
            with session_scope(self.sessions) as session:
                self._record(session, key, "pause" if input.resumes_at else "resume", rec.id)
        return self._result(self._subscription(rec.id))

    @activity.defn(name="stripe_pause_collection")
    async def pause_collection(self, input: PauseInput) -> SubscriptionResult:
        """Pause invoicing until ``resumes_at`` (a save offer), or resume it (``resumes_at`` None)."""
        return await self._run(self._pause, input)

    # --- invoices --------------------------------------------------------------------------

    def _retry_invoice(self, input: RetryInvoiceInput) -> RetryInvoiceResult:
        """Charge the invoice at most once for this step, whatever crashes.

        Before paying, a pending marker (the invoice's attempt count and payment intent as
        read from Stripe) is committed on its own under ``<key>:pending``; no transaction is
        held across the Stripe call. An attempt that finds the marker but not the charge's
        record (the worker died between Stripe's answer and our commit) re-reads the invoice:
        if it moved since the marker, that outcome is reported; only if nothing moved is it
        charged, as nothing reached Stripe.
        """
        key = input.idempotency_key
        pending_key = f"{key}:pending"
        raw = to_plain(self.client.v1.invoices.retrieve(input.invoice_id))
        inv = parse_invoice(raw)
        recorded = self._recorded(key) is not None
        marker = None if recorded else self._recorded(pending_key)
        moved = marker is not None and marker != pay_marker(inv)
        if inv.status == "paid":
            # this step's own earlier charge, recorded or only marked (paid after the marker)
            charged = recorded or marker is not None
            result = RetryInvoiceResult("paid", inv.status, inv.amount_due_cents, charged=charged)
        elif inv.status not in ("draft", "open"):
            result = RetryInvoiceResult("not_payable", inv.status, inv.amount_due_cents)
        elif recorded or moved:
            # This step already attempted the charge; report, do not charge again.
            if moved:
                with session_scope(self.sessions) as session:
                    self._record(session, key, PAYMENT, inv.id)
            result = invoice_outcome(inv)
        elif (charged_with := self._invoice_payment_method(raw)) is None:
            result = RetryInvoiceResult("no_payment_method", inv.status, inv.amount_due_cents)
        elif input.payment_method_id and charged_with != input.payment_method_id:
            # a retry for a new card that is not (yet) what this invoice is charged with
            result = RetryInvoiceResult(NOT_CHARGED_CARD, inv.status, inv.amount_due_cents)
        else:
            if marker is None:
                with session_scope(self.sessions) as session:
                    self._record(session, pending_key, "invoice_payment_pending", pay_marker(inv))
                    note_attempt(session, key, inv.id)  # the engine's own attempt (Stripe's retries tell apart)
            decline: stripe.CardError | None = None
            try:
                self.client.v1.invoices.pay(inv.id, options=self._opts(key))
            except stripe.CardError as exc:  # real Stripe raises on a decline
                decline = exc
            with session_scope(self.sessions) as session:
                self._record(session, key, PAYMENT, inv.id)
            # localstripe raises nothing on a decline: read the invoice's status.
            inv = parse_invoice(to_plain(self.client.v1.invoices.retrieve(inv.id)))
            result = invoice_outcome(inv, decline)
        with session_scope(self.sessions) as session:
            upsert_invoice(session, inv, now_ts())
        return result

    @activity.defn(name="stripe_retry_invoice")
    async def retry_invoice(self, input: RetryInvoiceInput) -> RetryInvoiceResult:
        """Try to collect an open invoice once per step; a decline is an outcome."""
        return await self._run(self._retry_invoice, input)

    # --- coupons ---------------------------------------------------------------------------

    @staticmethod
    def coupon_id_for(key: str) -> str:
        return "lc-" + hashlib.sha256(key.encode()).hexdigest()[:20]

    def _coupon(self, input: CouponInput) -> CouponResult:
        if (input.percent_off is None) == (input.amount_off_cents is None):
            raise business_error("give exactly one of percent_off and amount_off_cents")
        cid = self.coupon_id_for(input.idempotency_key)
        try:
            self.client.v1.coupons.retrieve(cid)
        except stripe.InvalidRequestError as exc:
            if exc.http_status != 404:
                raise
            params: dict[str, Any] = {
                "id": cid,
                "duration": input.duration,
                "metadata": {MD_CUSTOMER: input.customer_id, MD_KEY: input.idempotency_key},
            }
            if input.percent_off is not None:
                params["percent_off"] = input.percent_off
            else:
                params["amount_off"] = input.amount_off_cents
                params["currency"] = input.currency
            if input.duration == "repeating":
                params["duration_in_months"] = input.duration_in_months or 1
            self.client.v1.coupons.create(params=params, options=self._opts(input.idempotency_key))  # type: ignore[arg-type]  # params built up as a dict
        applied = None
        if input.apply_to_subscription:
            apply_key = f"{input.idempotency_key}:apply"
            if self._recorded(apply_key) is None and not self.localstripe_compat:
                self.client.v1.subscriptions.update(
                    input.apply_to_subscription,
                    params={"discounts": [{"coupon": cid}]},
                    options=self._opts(apply_key),
                )
                with session_scope(self.sessions) as session:
                    self._record(session, apply_key, "discount", input.apply_to_subscription)
            applied = input.apply_to_subscription
        with session_scope(self.sessions) as session:
            self._record(session, input.idempotency_key, "coupon", cid)
        return CouponResult(coupon_id=cid, applied_to=applied)

    @activity.defn(name="stripe_create_coupon")
    async def create_coupon(self, input: CouponInput) -> CouponResult:
        """Create an offer coupon (id derived from the step) and apply it if asked."""
        return await self._run(self._coupon, input)

    def all(self) -> list[Callable[..., Any]]:
        """The activities to register on the worker."""
        return [
            self.ensure_customer,
            self.import_customer,
            self.start_subscription,
            self.change_plan,
            self.cancel_subscription,
            self.reactivate_subscription,
            self.retry_invoice,
            self.create_coupon,
            self.pause_collection,
        ]

