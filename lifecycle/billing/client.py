"""The Stripe client, built from the settings, and the metadata keys the engine writes on
the Stripe objects it creates.

Stripe calls in this room are synchronous (CLI and ``lifecycle dev``); activities wrap
theirs in threads.
"""

from __future__ import annotations

import time

import stripe

from lifecycle.settings import Settings, real_stripe

# Every module of the billing room logs under this one name (what operators filter on).
LOGGER_NAME = "lifecycle.billing.service"

# Metadata keys the engine writes on the Stripe objects it creates.
MD_CUSTOMER = "lifecycle_customer_id"
MD_PLAN = "lifecycle_plan"
MD_INTERVAL = "lifecycle_interval"
MD_KEY = "lifecycle_idempotency_key"


class StripeNotConfigured(RuntimeError):
    """Stripe settings are missing; the message names the variable."""


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
        base_addresses=base,  # type: ignore[arg-type]  # the SDK's TypedDict wants literal keys
        max_network_retries=max_network_retries,
    )


def now_ts() -> int:
    return int(time.time())


def is_real_stripe(settings: Settings) -> bool:
    """True against Stripe itself (no API base set, or api.stripe.com); False against a
    stand-in such as localstripe, which has no hosted pages (Billing Portal, Checkout)."""
    return real_stripe(settings)
