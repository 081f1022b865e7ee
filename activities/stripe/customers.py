"""Stripe customers and their payment methods: what Stripe charges, never "the newest card"."""

from __future__ import annotations

from typing import Any

import stripe
from temporalio import activity

from activities.stripe.base import StripeBase
from activities.stripe_answers import (
    stripe_error,
)
from lifecycle.billing.client import (
    MD_CUSTOMER,
    MD_KEY,
)
from lifecycle.billing.payment_shapes import payment_method_charged
from lifecycle.billing.shapes import parse_customer, parse_invoice, to_plain
from lifecycle.contracts.billing import (
    EnsureCustomerInput,
    EnsureCustomerResult,
    ImportCustomerInput,
    ImportCustomerResult,
)
from lifecycle.db import session_scope


class CustomerCalls(StripeBase):
    """The Stripe customer (created once) and the cards Stripe charges."""

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

    def _attach(self, stripe_customer_id: str, payment_method_id: str, key: str, *, make_default: bool = True) -> None:
        """Attach a card (e.g. collected by Stripe Elements) and make it the default
        (``make_default`` False: only if the customer has no default, one they chose stays).

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
        if not make_default and self._customer_default(stripe_customer_id) is not None:
            return
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

