"""The offer coupon's terms on every interval (lifecycle/contracts/coupons.py) and the
discounts list a coupon is added to (Stripe replaces the list on update)."""

from __future__ import annotations

import pytest

from activities.stripe.invoices import discounts_with
from lifecycle.contracts.coupons import CouponTerms, coupon_terms, offer_words


@pytest.mark.parametrize(
    ("args", "terms", "words"),
    [
        # monthly: every invoice of the N months, at P %
        ((25, 3, "month", 4900), CouponTerms("repeating", percent_off=25, duration_in_months=3), "25% off for 3 months"),
        ((30, 0, "month", 4900), CouponTerms("once", percent_off=30), "30% off your first month"),
        ((10, 2, "week", 1200), CouponTerms("repeating", percent_off=10, duration_in_months=2), "10% off for 2 months"),
        # annual: the N months' share of the year, once, in the subscription's currency
        ((25, 3, "year", 49000), CouponTerms("once", amount_off_cents=3063, currency="usd"),
         "$30.63 off your next invoice (25% off 3 months)"),
        ((30, 0, "year", 49000, "EUR"), CouponTerms("once", amount_off_cents=1225, currency="eur"),
         "€12.25 off your next invoice (30% off your first month)"),
        # whole years: each of those annual invoices at P % (exactly what is promised)
        ((20, 12, "year", 49000), CouponTerms("repeating", percent_off=20, duration_in_months=12), "20% off for 12 months"),
        # quarterly: 3 months is one whole invoice, 1 month a third of one
        ((25, 3, "month", 12000, "usd", 3), CouponTerms("repeating", percent_off=25, duration_in_months=3),
         "25% off for 3 months"),
        ((25, 1, "month", 12000, "usd", 3), CouponTerms("once", amount_off_cents=1000, currency="usd"),
         "$10 off your next invoice (25% off 1 month)"),
    ],
)
def test_the_coupon_means_what_the_offer_says_on_every_interval(args: tuple, terms: CouponTerms, words: str) -> None:
    assert coupon_terms(*args) == terms
    assert offer_words(*args) == words


def test_never_more_off_than_the_invoice() -> None:
    assert coupon_terms(100, 18, "year", 49000).amount_off_cents == 49000


def test_a_coupon_is_added_next_to_the_subscription_s_discounts() -> None:
    sub = {"discounts": ["di_partner", {"id": "di_promo", "source": {"coupon": {"id": "SPRING"}}}]}
    assert discounts_with(sub, "lc-offer") == [{"discount": "di_partner"}, {"discount": "di_promo"}, {"coupon": "lc-offer"}]
    assert discounts_with({"discounts": []}, "lc-offer") == [{"coupon": "lc-offer"}]
    again = {"discounts": [{"id": "di_offer", "coupon": {"id": "lc-offer"}}]}
    assert discounts_with(again, "lc-offer") == [{"discount": "di_offer"}]  # never twice
