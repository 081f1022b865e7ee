"""Stripe invoices and coupons: the retry that charges at most once per step, offer coupons."""

from __future__ import annotations

import hashlib
from typing import Any

import stripe
from temporalio import activity

from activities.stripe.customers import CustomerCalls
from activities.stripe_answers import (
    business_error,
    invoice_outcome,
    pay_marker,
)
from lifecycle.billing.charges import PAYMENT, hard_declined_with, note_attempt
from lifecycle.billing.client import (
    MD_CUSTOMER,
    MD_KEY,
    now_ts,
)
from lifecycle.billing.mirror import upsert_invoice
from lifecycle.billing.shapes import (
    parse_invoice,
    to_plain,
)
from lifecycle.contracts.billing import (
    CARD_HARD_DECLINED,
    NOT_CHARGED_CARD,
    CouponInput,
    CouponResult,
    RetryInvoiceInput,
    RetryInvoiceResult,
)
from lifecycle.db import session_scope


class InvoiceCalls(CustomerCalls):
    """The dunning retry's charge and the offers' coupons."""

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
        elif (hard := self._hard_declined(inv.id, charged_with)) is not None:
            # this card's last attempt on the invoice was a hard decline: charging it again
            # cannot succeed (and counts against the account with the card networks)
            result = RetryInvoiceResult(CARD_HARD_DECLINED, inv.status, inv.amount_due_cents,
                                        failure_code=hard, hard_decline=True)
        else:
            if marker is None:
                with session_scope(self.sessions) as session:
                    self._record(session, pending_key, "invoice_payment_pending", pay_marker(inv))
                    note_attempt(session, key, inv.id)  # the engine's own attempt (Stripe's retries tell apart)
            decline: stripe.CardError | None = None
            try:
                # the card checked is the card charged (Stripe's "Pay an invoice",
                # payment_method); localstripe answers 500 to it and charges the customer's default
                pay = {} if self.localstripe_compat else {"payment_method": charged_with}
                self.client.v1.invoices.pay(inv.id, params=pay, options=self._opts(key))  # type: ignore[arg-type]
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

    def _hard_declined(self, invoice_id: str, payment_method_id: str) -> str | None:
        with session_scope(self.sessions) as session:
            return hard_declined_with(session, invoice_id, payment_method_id)

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
