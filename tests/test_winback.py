"""Win-back on the time-skipping server with the real workflow code and the real
activities (Stripe = localstripe behind the recording proxy, SQLite, the outbox): the
emails on day 7, 30 and 60, a stop on reactivation at each step, on unsubscribe and on a
hard bounce, ``lost`` after the last, the trial variant after an expiry, and the
reactivation page's answers to bad links and to a customer who is already active."""

from __future__ import annotations

import datetime as dt
import re
from datetime import timedelta

import pytest
from temporalio.client import WorkflowHandle

from lifecycle.contracts.ids import campaign_workflow_id
from lifecycle.email.suppressions import BOUNCE, add_suppression
from lifecycle.links import make_link_token
from tests.support.helpers import customer_row, eventually, timeline
from tests.support.retention import PUBLIC_URL, Retained, reactivate_link
from tests.support.stripe import new_customer_id, signed_up

pytestmark = pytest.mark.usefixtures("ts_env")
DAY = timedelta(days=1)


async def _churned(ret: Retained) -> tuple[str, WorkflowHandle]:
    """A subscriber who canceled at once: the win-back campaign starts."""
    cid = await ret.subscriber()
    r = await ret.http.delete(f"/v1/customers/{cid}/subscription", params={"at_once": "true"})
    assert r.status_code == 200 and r.json()["status"] == "canceled", r.text
    await eventually(lambda: _has_winback(ret, cid))
    return cid, ret.client.get_workflow_handle(campaign_workflow_id(cid, "winback", "1"))


async def _has_winback(ret: Retained, cid: str) -> bool:
    return "winback" in (await ret.state(cid)).campaigns


async def _sleep_to(ts_env, started: dt.datetime, days: float) -> None:
    """Advance the server's clock to ``days`` after ``started`` (plus an hour)."""
    now = await ts_env.get_current_time()
    target = started + timedelta(days=days, hours=1)
    if target > now:
        await ts_env.sleep(target - now)


def _subjects(ret: Retained, cid: str) -> list[str]:
    return [m.subject for m in ret.winback_emails(cid)]


async def test_churned_customer_gets_day_7_30_60_emails_then_is_lost(ts_env, retained: Retained) -> None:
    cid, winback = await _churned(retained)
    started = await ts_env.get_current_time()

    await ts_env.sleep(timedelta(days=6, hours=22))
    assert _subjects(retained, cid) == []
    await _sleep_to(ts_env, started, 7)
    await eventually(lambda: _subjects(retained, cid) == ["We miss you, Ada"])
    await _sleep_to(ts_env, started, 29)
    assert len(_subjects(retained, cid)) == 1
    await _sleep_to(ts_env, started, 30)
    await eventually(lambda: len(_subjects(retained, cid)) == 2)
    await _sleep_to(ts_env, started, 60)
    await eventually(lambda: _subjects(retained, cid)[-1] == "Last chance: 30% off for 3 months")

    first = retained.winback_emails(cid)[0]
    assert "30% off for 3 months" in first.html and "Professional" in first.html
    assert reactivate_link(first).startswith(f"{PUBLIC_URL}/billing/reactivate?token=")
    assert (await retained.state(cid)).stage == "canceled"

    await _sleep_to(ts_env, started, 74)  # 14 days after the last email with no answer
    assert await winback.result() == "lost"
    await eventually(lambda: customer_row(retained.sessions, cid).stage == "lost")
    assert (await retained.state(cid)).stage == "lost"


@pytest.mark.parametrize("emails_before", [0, 1, 2, 3])
async def test_reactivating_stops_the_campaign_at_once_at_any_step(
    ts_env, retained: Retained, stripe_client, emails_before: int
) -> None:
    cid, winback = await _churned(retained)
    started = await ts_env.get_current_time()
    if emails_before:
        await _sleep_to(ts_env, started, (7, 30, 60)[emails_before - 1])
        await eventually(lambda: len(_subjects(retained, cid)) == emails_before)
        link = reactivate_link(retained.winback_emails(cid)[-1])
    else:  # before the first email: the link of the same campaign, as the email will carry it
        token = make_link_token(retained.settings.link_secret, "reactivate", cid,
                                dt.datetime.now(dt.UTC) + timedelta(days=90), winback=1)
        link = f"/billing/reactivate?token={token}"

    page = await retained.http.get(link)
    assert page.status_code == 200 and "Reactivate Professional" in page.text and "30% off for 3 months" in page.text
    done = await retained.http.post(link)

    assert done.status_code == 200 and "Welcome back!" in done.text, done.text
    assert await winback.result() == "reactivated"
    state = await retained.state(cid)
    assert (state.stage, state.billing.status, state.plan) == ("won_back", "active", "professional")
    [row] = retained.reactivations(cid)
    assert (row.plan, row.interval, row.mrr_cents, row.percent_off, row.duration_months, row.winback) == (
        "professional", "month", 4900, 30.0, 3, 1)
    # the coupon went on the new subscription (localstripe cannot apply it: the request says it)
    [created] = [r.form for r in retained.stripe.posts("/v1/subscriptions") if r.path == "/v1/subscriptions"
                 and r.form.get("discounts[0][coupon]")]
    assert created["discounts[0][coupon]"] == row.coupon_id
    coupon = stripe_client.v1.coupons.retrieve(row.coupon_id)
    assert (coupon.percent_off, coupon.duration_in_months) == (30.0, 3)

    await _sleep_to(ts_env, started, 90)
    assert len(_subjects(retained, cid)) == emails_before  # nothing after the reactivation
    again = await retained.http.get(link)  # the same link now: already active, says so
    assert "You are already subscribed" in again.text
    second = await retained.http.post(link)
    assert "You are already subscribed" in second.text and len(retained.reactivations(cid)) == 1


async def test_an_annual_customer_s_winback_says_the_year_s_price_and_its_coupon_is_true_to_it(
    ts_env, retained: Retained, stripe_client
) -> None:
    """30 % for 3 months on a $490 year is $36.75 off once: the emails, the page and the
    coupon in Stripe say the same, and no email says "/month"."""
    cid = await retained.subscriber(interval="year")
    r = await retained.http.delete(f"/v1/customers/{cid}/subscription", params={"at_once": "true"})
    assert r.status_code == 200, r.text
    await eventually(lambda: _has_winback(retained, cid))
    started = await ts_env.get_current_time()
    await _sleep_to(ts_env, started, 7)
    [first] = await eventually(lambda: retained.winback_emails(cid))

    words = "$36.75 off your next invoice (30% off 3 months)"
    assert words in first.html and words in first.text and "$490/year" in first.text
    assert "/month" not in first.html and "/month" not in first.text
    link = reactivate_link(first)
    page = await retained.http.get(link)
    assert words in page.text and "$490/year" in page.text
    done = await retained.http.post(link)
    assert "Welcome back!" in done.text, done.text
    [row] = retained.reactivations(cid)
    coupon = stripe_client.v1.coupons.retrieve(row.coupon_id)
    assert (row.interval, coupon.duration, coupon.amount_off, coupon.currency) == ("year", "once", 3675, "usd")
    [created] = [r.form for r in retained.stripe.posts("/v1/subscriptions") if r.path == "/v1/subscriptions"
                 and r.form.get("discounts[0][coupon]")]
    assert created["discounts[0][coupon]"] == row.coupon_id


async def test_an_unsubscribe_stops_the_campaign(ts_env, retained: Retained) -> None:
    cid, winback = await _churned(retained)
    started = await ts_env.get_current_time()
    await _sleep_to(ts_env, started, 7)
    [first] = await eventually(lambda: retained.winback_emails(cid))
    unsubscribe = re.search(r'href="([^"]*/unsubscribe\?token=[^"]+)"', first.html).group(1)

    r = await retained.http.post(unsubscribe.replace(PUBLIC_URL, ""))

    assert r.status_code == 200, r.text
    assert await winback.result() == "unsubscribed"
    await _sleep_to(ts_env, started, 80)
    assert len(retained.winback_emails(cid)) == 1
    assert (await retained.state(cid)).stage == "canceled"  # opted out is not lost


async def test_a_hard_bounce_stops_the_campaign_at_its_next_step(ts_env, retained: Retained) -> None:
    cid, winback = await _churned(retained)
    started = await ts_env.get_current_time()
    await _sleep_to(ts_env, started, 7)
    await eventually(lambda: retained.winback_emails(cid))
    with retained.sessions() as s:
        add_suppression(s, email=f"{cid}@example.test", reason=BOUNCE, customer_id=cid, source="sendgrid:bounce")
        s.commit()

    await _sleep_to(ts_env, started, 30)

    assert await winback.result() == "bounced"
    assert len(retained.winback_emails(cid)) == 1
    skipped = [e.detail for e in timeline(retained.sessions, cid) if e.kind == "email_skipped" and e.campaign == "winback"]
    assert [(d["step"], d["reason"]) for d in skipped] == [("winback_day_30", "suppressed: hard bounce")]


async def test_an_expired_trial_gets_the_trial_variant_and_a_card_link(ts_env, retained: Retained) -> None:
    cid = new_customer_id("trial")
    await signed_up(retained.client, retained.settings, retained.sessions, cid)
    await ts_env.sleep(timedelta(days=14, hours=1))
    await eventually(lambda: customer_row(retained.sessions, cid).stage == "expired")
    started = await ts_env.get_current_time()
    await _sleep_to(ts_env, started, 7)

    [first] = await eventually(lambda: retained.winback_emails(cid))
    assert first.subject == "Continue where you left off, Ada" and first.template == "winback_trial"
    assert (await retained.state(cid)).winback.winback_variant == "trial"
    page = await retained.http.get(reactivate_link(first))
    assert page.status_code == 200 and "Starter" in page.text
    assert "/billing/card?token=" in page.text and "<form" not in page.text  # no card: the card page
    tried = await retained.http.post(reactivate_link(first))  # a POST anyway: the card page too
    assert "Add a card" in tried.text and (await retained.state(cid)).stage == "expired"


async def test_bad_links_get_a_clear_page(retained: Retained) -> None:
    cid = await retained.subscriber()
    secret = retained.settings.link_secret
    now = dt.datetime.now(dt.UTC)
    expired = make_link_token(secret, "reactivate", cid, now - timedelta(minutes=1), winback=1)
    forged = make_link_token("not-our-secret", "reactivate", cid, now + DAY, winback=1)
    card = make_link_token(secret, "card", cid, now + DAY)  # a token for another page
    active = make_link_token(secret, "reactivate", cid, now + DAY, winback=1)

    r_expired = await retained.http.get(f"/billing/reactivate?token={expired}")
    r_forged = await retained.http.post(f"/billing/reactivate?token={forged}")
    r_card = await retained.http.get(f"/billing/reactivate?token={card}")
    r_active = await retained.http.post(f"/billing/reactivate?token={active}")

    assert r_expired.status_code == 410 and "This link has expired" in r_expired.text
    assert r_forged.status_code == 400 and "signature does not match" in r_forged.text
    assert r_card.status_code == 400 and "This link is not valid" in r_card.text
    assert r_active.status_code == 200 and "You are already subscribed" in r_active.text
    creates = [r for r in retained.stripe.posts("/v1/subscriptions") if r.path == "/v1/subscriptions"]
    assert len(creates) == 1  # the customer's own subscription: no link started another
