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

from collections.abc import Callable
from typing import Any

from activities.stripe.invoices import InvoiceCalls
from activities.stripe.subscriptions import SubscriptionCalls

__all__ = ["StripeActivities"]


class StripeActivities(SubscriptionCalls, InvoiceCalls):
    """Built once by the worker with its Stripe client and database session factory."""

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

