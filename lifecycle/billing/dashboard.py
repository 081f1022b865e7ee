"""Links into the Stripe dashboard, so support can cross-check a customer in Stripe.

Test or live by the configured secret key: a live key (``sk_live_…``, ``rk_live_…``)
links to the live dashboard, anything else (``sk_test_…``, localstripe's keys) to
``/test``.
"""

from __future__ import annotations

from lifecycle.settings import live_stripe_key

DASHBOARD = "https://dashboard.stripe.com"


def dashboard_base(api_key: str) -> str:
    return DASHBOARD if live_stripe_key(api_key) else f"{DASHBOARD}/test"


def customer_url(api_key: str, stripe_customer_id: str) -> str:
    return f"{dashboard_base(api_key)}/customers/{stripe_customer_id}"


def subscription_url(api_key: str, stripe_subscription_id: str) -> str:
    return f"{dashboard_base(api_key)}/subscriptions/{stripe_subscription_id}"
