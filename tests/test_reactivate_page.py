"""The reactivation page says what the one click charges, today and at the next payment
(with its date), before the click; the form posts the token in its body. Checked against
what Stripe (localstripe, through the stripe SDK) holds after the click."""

from __future__ import annotations

import datetime as dt
import html
import re
from datetime import timedelta

import pytest
import stripe

from lifecycle.contracts.ids import campaign_workflow_id
from lifecycle.links import make_link_token
from lifecycle.usage.periods import add_months
from tests.support.helpers import eventually
from tests.support.retention import Retained

pytestmark = pytest.mark.usefixtures("ts_env")


def _day(at: dt.datetime) -> str:
    return f"{at.day} {at:%B %Y}"


def _rows(page: str) -> dict[str, str]:
    table = re.search(r"<table[^>]*>(.*?)</table>", page, re.S)
    assert table, page
    return {k: re.sub(r"<[^>]+>", "", html.unescape(v)) for k, v in
            re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", table.group(1))}


async def _churned_link(ret: Retained, *, winback: int) -> tuple[str, str]:
    cid = await ret.subscriber("professional")
    r = await ret.http.delete(f"/v1/customers/{cid}/subscription", params={"at_once": "true"})
    assert r.status_code == 200, r.text
    await eventually(lambda: _has_winback(ret, cid))
    token = make_link_token(ret.settings.link_secret, "reactivate", cid,
                            dt.datetime.now(dt.UTC) + timedelta(days=14), winback=winback)
    return cid, token


async def _has_winback(ret: Retained, cid: str) -> bool:
    return "winback" in (await ret.state(cid)).campaigns


async def _click(ret: Retained, page: str) -> str:
    """What the browser sends for the page's one button: the form's action, its fields."""
    form = re.search(r"<form method='post' action='([^']*)'>(.*?)</form>", page, re.S)
    assert form, page
    assert "token" not in form.group(1) and "?" not in form.group(1)  # never in the URL
    fields = dict(re.findall(r"<input type='hidden' name='([^']*)' value='([^']*)'>", form.group(2)))
    done = await ret.http.post(form.group(1), data={k: html.unescape(v) for k, v in fields.items()})
    assert done.status_code == 200 and "Welcome back!" in done.text, done.text
    return done.text


async def _new_subscription(ret: Retained, stripe_client: stripe.StripeClient, cid: str) -> stripe.Subscription:
    async def live() -> bool:
        return (await ret.state(cid)).billing.status == "active"

    await eventually(live)
    sid = (await ret.state(cid)).billing.stripe_subscription_id
    assert sid
    return stripe_client.v1.subscriptions.retrieve(sid)


async def test_without_an_offer_the_page_shows_the_charge_stripe_then_makes(
    retained: Retained, stripe_client: stripe.StripeClient
) -> None:
    cid, token = await _churned_link(retained, winback=0)  # a link without the campaign's offer
    now = dt.datetime.now(dt.UTC)
    page = (await retained.http.get(f"/billing/reactivate?token={token}")).text
    rows = _rows(page)
    assert rows["Plan"] == "Professional" and rows["Price"] == "$49/month"
    assert "Your offer" not in rows and "Then" not in rows
    assert rows["Charged today"] == "$49"
    assert rows["Next payment"] == f"$49 on {_day(add_months(now, 1))}"

    await _click(retained, page)
    sub = await _new_subscription(retained, stripe_client, cid)
    # what the page said is what Stripe holds: the first invoice paid, the next one's date
    [invoice] = [i for i in stripe_client.v1.invoices.list(params={"customer": sub.customer}).data
                 if i.subscription == sub.id]
    assert invoice.amount_paid == 4900 and invoice["status"] == "paid"
    period_end = dt.datetime.fromtimestamp(sub["current_period_end"], dt.UTC)
    assert _day(period_end) == _day(add_months(now, 1))


async def test_with_the_offer_the_page_shows_the_discounted_charges_and_when_the_full_price_returns(
    retained: Retained, stripe_client: stripe.StripeClient
) -> None:
    cid, token = await _churned_link(retained, winback=1)  # the campaign's offer: 30 % for 3 months
    now = dt.datetime.now(dt.UTC)
    page = (await retained.http.get(f"/billing/reactivate?token={token}")).text
    rows = _rows(page)
    assert rows["Price"] == "$49/month" and rows["Your offer"] == "30% off for 3 months"
    assert rows["Charged today"].startswith("$34.30")  # $49 less 30 %
    assert rows["Next payment"] == f"$34.30 on {_day(add_months(now, 1))}"  # inside the 3 months
    assert rows["Then"] == f"$49/month from {_day(add_months(now, 3))}"
    assert "charged $34.30 today" in page

    await _click(retained, page)
    sub = await _new_subscription(retained, stripe_client, cid)
    period_end = dt.datetime.fromtimestamp(sub["current_period_end"], dt.UTC)
    assert _day(period_end) == _day(add_months(now, 1))
    # the coupon Stripe holds is the one the page described (localstripe cannot apply it to
    # the invoice: docs/winback.md)
    [row] = retained.reactivations(cid)
    coupon = stripe_client.v1.coupons.retrieve(row.coupon_id or "")
    assert (coupon.percent_off, coupon.duration, coupon.duration_in_months) == (30.0, "repeating", 3)
    winback = retained.client.get_workflow_handle(campaign_workflow_id(cid, "winback", "1"))
    assert await winback.result() == "reactivated"


@pytest.mark.parametrize(
    ("interval", "months", "today", "next_cents", "full_from"),
    [
        ("month", 3, 3430, 3430, 3),  # 30 % off Dec, Jan, Feb; full price from March
        ("month", 1, 3430, 4900, None),  # one month: only today's invoice
        ("month", 0, 3430, 4900, None),  # "on your first invoice" (duration once)
        ("year", 3, 34300, 49000, None),  # a year paid today inside the offer; the next one is full
        ("year", 18, 34300, 34300, 24),  # an offer longer than a year covers the next renewal too
    ],
)
def test_the_terms_follow_stripes_coupon_durations(
    interval: str, months: int, today: int, next_cents: int, full_from: int | None
) -> None:
    from lifecycle.contracts.customer import CustomerState
    from lifecycle.links import Link
    from starter.pages.reactivate import reactivation_terms

    state = CustomerState(customer_id="c", plan="professional", stage="canceled")
    state.billing.interval = interval
    state.winback.winbacks, state.winback.winback_percent_off, state.winback.winback_months = 1, 30.0, months
    now = dt.datetime(2026, 12, 7, 16, tzinfo=dt.UTC)
    link = Link("reactivate", "c", now + timedelta(days=1), {"winback": 1})
    terms = reactivation_terms(state, link, now)
    step = 1 if interval == "month" else 12
    assert (terms.today_cents, terms.next_cents, terms.next_at) == (today, next_cents, add_months(now, step))
    assert terms.full_price_from == (add_months(now, full_from) if full_from else None)
    # a link without the campaign's offer: the full price, today and next
    plain = reactivation_terms(state, Link("reactivate", "c", now, {"winback": 0}), now)
    assert plain.today_cents == plain.next_cents == plain.price_cents == (4900 if interval == "month" else 49000)
