"""An offer's coupon on every billing interval: what Stripe is told and what the customer
reads, in one place (the save offer's and the win-back's coupon; the Stripe activity, the
emails and the reactivation page all ask here).

An offer reads "P % off for N months". Stripe applies a coupon's duration per invoice: a
``repeating`` coupon with ``duration_in_months`` N discounts every invoice issued within N
months of its start (docs.stripe.com/billing/subscriptions/coupons: "a 4-month coupon
applies to the first four monthly invoices, or to the whole first invoice of a yearly
subscription"). So on an invoice that covers more than a month, "25 % off for 3 months"
as a ``repeating`` coupon would take 25 % off a whole year. The terms:

- an invoice of a month or less (monthly, weekly, daily billing): ``repeating`` N months
  at P % (every invoice in those months); N = 0: ``once``, the first invoice (month);
- an invoice of several months (annual: 12) and N a whole number of such invoices:
  ``repeating`` N months at P % (each of those invoices whole: exactly what is promised);
- otherwise: ``once``, ``amount_off`` = P % of N months' share of the invoice (N/12 of
  the annual price), in the subscription's currency; N = 0 means one month's share
  ("your first month").

Pure, and no ``from __future__ import annotations``: workflow code uses it.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from lifecycle.contracts.money import money

ONCE = "once"
REPEATING = "repeating"


@dataclass
class CouponTerms:
    """A coupon as Stripe is asked to create it."""

    duration: str  # once | repeating
    percent_off: float | None = None
    amount_off_cents: int | None = None
    currency: str | None = None  # with amount_off
    duration_in_months: int | None = None  # with repeating


def invoice_months(interval: str, interval_count: int = 1) -> int:
    """How many months one invoice covers (0: less than a month: week, day)."""
    if interval == "year":
        return 12 * interval_count
    if interval == "month":
        return interval_count
    return 0


def coupon_terms(
    percent_off: float,
    months: int,
    interval: str,
    price_cents: int,
    currency: str = "usd",
    interval_count: int = 1,
) -> CouponTerms:
    """The coupon for "``percent_off`` % off for ``months`` months" (0: the first month) on a
    subscription billed every ``interval_count`` ``interval`` at ``price_cents`` an invoice."""
    per_invoice = invoice_months(interval, interval_count)
    if per_invoice <= 1:
        if months <= 0:
            return CouponTerms(ONCE, percent_off=percent_off)
        return CouponTerms(REPEATING, percent_off=percent_off, duration_in_months=months)
    if months > 0 and months % per_invoice == 0:
        return CouponTerms(REPEATING, percent_off=percent_off, duration_in_months=months)
    share = Decimal(price_cents) * Decimal(str(percent_off)) / 100 * max(months, 1) / per_invoice
    amount = int(share.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return CouponTerms(ONCE, amount_off_cents=min(amount, price_cents), currency=currency.lower())


def offer_words(
    percent_off: float,
    months: int,
    interval: str,
    price_cents: int,
    currency: str = "usd",
    interval_count: int = 1,
) -> str:
    """The offer as an email or a page says it, true to :func:`coupon_terms`:
    "25% off for 3 months", "30% off your first month", or on annual billing
    "$36.75 off your annual invoice (25% off 3 months)"."""
    terms = coupon_terms(percent_off, months, interval, price_cents, currency, interval_count)
    length = f"for {months} month{'s' if months != 1 else ''}" if months > 0 else "your first month"
    if terms.amount_off_cents is None:
        return f"{percent_off:g}% off {length}"
    span = f"{months} month{'s' if months != 1 else ''}" if months > 0 else "your first month"
    return f"{money(terms.amount_off_cents, terms.currency or currency)} off your next invoice ({percent_off:g}% off {span})"


def price_words(price_cents: int, interval: str, currency: str = "usd") -> str:
    """A price with its period, as the offer emails say it: "$49/month", "$490/year"."""
    return f"{money(price_cents, currency)}/{interval}"
