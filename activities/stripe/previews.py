"""What Stripe will charge at a subscription's next renewal: its preview invoice.

``POST /v1/invoices/create_preview`` with the customer and the subscription (Stripe's
"Create a preview invoice", which replaced the upcoming-invoice API) computes the next
invoice as Stripe will issue it: the renewal's price, tax, and every discount as it will
stand then (a coupon that ends before the renewal is no longer applied). ``amount_due`` is
what will be charged. A read: no idempotency key, nothing recorded.

The call is capped (``PREVIEW_TIMEOUT_S``, 10 s); a failure, a timeout or no client gives
None, and the caller falls back to the billing mirror. localstripe (1.15.10) answers
create_preview with the price and the subscription's tax rates, not with discounts (it
refuses them), so a discount's end is Stripe's alone (docs/billing.md).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import stripe

from lifecycle.billing.shapes import to_plain

log = logging.getLogger("lifecycle.activities.stripe")

PREVIEW_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RenewalPreview:
    amount_due: int  # Stripe's integer amount in the currency's minor unit, tax and discounts in
    currency: str
    tax: int = 0


class RenewalPreviews:
    """Built once by the worker with its Stripe client (None: Stripe not configured)."""

    def __init__(self, client: stripe.StripeClient | None, *, timeout_s: float = PREVIEW_TIMEOUT_S) -> None:
        self._client = client
        self.timeout_s = timeout_s

    async def preview(self, stripe_customer_id: str, stripe_subscription_id: str) -> RenewalPreview | None:
        """The next invoice of the subscription as Stripe previews it; None when it cannot say."""
        if self._client is None:
            return None
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self._preview, stripe_customer_id, stripe_subscription_id), self.timeout_s
            )
        except (TimeoutError, stripe.StripeError, KeyError, TypeError, ValueError) as exc:
            log.warning("renewal preview of %s unavailable (%s): quoting the mirror",
                        stripe_subscription_id, type(exc).__name__)
            return None

    def _preview(self, stripe_customer_id: str, stripe_subscription_id: str) -> RenewalPreview:
        assert self._client is not None
        invoice = to_plain(self._client.v1.invoices.create_preview(
            params={"customer": stripe_customer_id, "subscription": stripe_subscription_id}
        ))
        taxes = invoice.get("total_taxes") or invoice.get("total_tax_amounts") or []
        return RenewalPreview(
            amount_due=int(invoice["amount_due"]),
            currency=str(invoice["currency"]).lower(),
            tax=sum(int(t.get("amount") or 0) for t in taxes),
        )
