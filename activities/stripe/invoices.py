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
from lifecycle.billing.catalog_sync import active_price
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
from lifecycle.contracts.coupons import CouponTerms, coupon_terms
from lifecycle.db import session_scope


def discounts_with(subscription: dict[str, Any], coupon_id: str) -> list[dict[str, str]]:
    """The subscription's ``discounts`` with a discount for ``coupon_id`` added: Stripe
    replaces the list on update, so each existing discount is named again (``{"discount":
    id}``) and kept; a coupon already among them is not added twice."""
    kept: list[dict[str, str]] = []
    has_it = False
    for d in subscription.get("discounts") or []:
        if isinstance(d, str):  # not expanded: the discount's id
            kept.append({"discount": d})
            continue
        if not isinstance(d, dict):
            continue
        coupon = d.get("coupon") or (d.get("source") or {}).get("coupon")
        has_it = has_it or (coupon.get("id") if isinstance(coupon, dict) else coupon) == coupon_id
        if d.get("id"):
            kept.append({"discount": str(d["id"])})
    return kept if has_it else [*kept, {"coupon": coupon_id}]


class InvoiceCalls(CustomerCalls):
    """The dunning retry's charge and the offers' coupons."""

    def _retry_invoice(self, input: RetryInvoiceInput) -> RetryInvoiceResult:
        """Charge the invoice at most once for this step, whatever crashes.

        Before paying, a pending marker (the invoice's attempt count and payment intent as
        read from Stripe) is committed on its own under ``<key>:pending``; no transaction is
        held across the Stripe call. An attempt that finds the marker but not the charge's
        record (the worker died between Stripe's answer and our commit) re-reads the invoice:
        if it moved since the marker, that outcome is reported; only if nothing moved is it
        charged, as nothing reached Stripe, with the card the invoice is charged with now
        (the pay call's idempotency key is ``<key>:<payment method>``).
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
                # the card is in the key: an attempt after a crash whose card changed meanwhile
                # is another request to Stripe (one key with other parameters: 400
                # idempotency_key_in_use); with the same card it is the same request
                self.client.v1.invoices.pay(inv.id, params=pay, options=self._opts(f"{key}:{charged_with}"))  # type: ignore[arg-type]
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

    def _offer_price(self, input: CouponInput) -> tuple[int, str, str, int]:
        """(an invoice's amount before discounts, its currency, its interval, its interval
        count) of the price the offer discounts: the live subscription's (a quarterly price
        is month x3: one invoice covers three months), else the tier's for ``plan`` /
        ``interval`` (the catalog bills every one month or year)."""
        if input.apply_to_subscription:
            rec = self._subscription(input.apply_to_subscription)
            interval = rec.interval or input.interval or "month"
            return rec.gross_amount_cents, rec.currency, interval, rec.interval_count or 1
        if not input.plan:
            raise business_error("plan: required for an offer coupon without a subscription")
        with session_scope(self.sessions) as session:
            price = active_price(session, input.plan, input.interval or "month")
            return price.amount_cents, price.currency, price.interval, 1

    def _terms(self, input: CouponInput) -> CouponTerms:
        if input.offer_months is not None:
            if input.percent_off is None:
                raise business_error("percent_off: required for an offer coupon")
            cents, currency, interval, count = self._offer_price(input)
            return coupon_terms(input.percent_off, input.offer_months, interval, cents, currency, count)
        if (input.percent_off is None) == (input.amount_off_cents is None):
            raise business_error("give exactly one of percent_off and amount_off_cents")
        repeating = input.duration == "repeating"
        return CouponTerms(
            input.duration, percent_off=input.percent_off, amount_off_cents=input.amount_off_cents,
            currency=input.currency if input.amount_off_cents is not None else None,
            duration_in_months=(input.duration_in_months or 1) if repeating else None,
        )

    def _coupon(self, input: CouponInput) -> CouponResult:
        cid = self.coupon_id_for(input.idempotency_key)
        try:
            coupon = to_plain(self.client.v1.coupons.retrieve(cid))
        except stripe.InvalidRequestError as exc:
            if exc.http_status != 404:
                raise
            terms = self._terms(input)
            params: dict[str, Any] = {
                "id": cid,
                "duration": terms.duration,
                "metadata": {MD_CUSTOMER: input.customer_id, MD_KEY: input.idempotency_key},
            }
            if terms.amount_off_cents is not None:
                params["amount_off"] = terms.amount_off_cents
                params["currency"] = terms.currency
            else:
                params["percent_off"] = terms.percent_off
            if terms.duration_in_months is not None:
                params["duration_in_months"] = terms.duration_in_months
            coupon = to_plain(self.client.v1.coupons.create(params=params, options=self._opts(input.idempotency_key)))  # type: ignore[arg-type]  # params built up as a dict
        applied = None
        if input.apply_to_subscription:
            apply_key = f"{input.idempotency_key}:apply"
            if self._recorded(apply_key) is None and not self.localstripe_compat:
                existing = to_plain(self.client.v1.subscriptions.retrieve(input.apply_to_subscription))
                self.client.v1.subscriptions.update(
                    input.apply_to_subscription,
                    params={"discounts": discounts_with(existing, cid)},  # type: ignore[arg-type]  # a list of dicts
                    options=self._opts(apply_key),
                )
                with session_scope(self.sessions) as session:
                    self._record(session, apply_key, "discount", input.apply_to_subscription)
            applied = input.apply_to_subscription
        with session_scope(self.sessions) as session:
            self._record(session, input.idempotency_key, "coupon", cid)
        amount = coupon.get("amount_off")
        percent = coupon.get("percent_off")
        return CouponResult(
            coupon_id=cid, applied_to=applied, duration=coupon.get("duration"),
            percent_off=float(percent) if percent not in (None, "") else None,
            amount_off_cents=int(amount) if amount not in (None, "") else None,
            currency=coupon.get("currency"),
        )

    @activity.defn(name="stripe_create_coupon")
    async def create_coupon(self, input: CouponInput) -> CouponResult:
        """Create an offer coupon (id derived from the step) and apply it if asked, next to
        the subscription's existing discounts."""
        return await self._run(self._coupon, input)
