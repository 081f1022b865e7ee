"""The Stripe dashboard links the customer view and `lifecycle customer show` print: test or
live by the configured key."""

from __future__ import annotations

from lifecycle.billing.dashboard import customer_url, subscription_url


def test_stripe_dashboard_links_follow_the_key() -> None:
    assert customer_url("sk_test_abc", "cus_1") == "https://dashboard.stripe.com/test/customers/cus_1"
    assert customer_url("sk_live_abc", "cus_1") == "https://dashboard.stripe.com/customers/cus_1"
    assert subscription_url("rk_live_abc", "sub_9") == "https://dashboard.stripe.com/subscriptions/sub_9"
    assert subscription_url("sk_localstripe", "sub_9") == "https://dashboard.stripe.com/test/subscriptions/sub_9"
