"""Cancellation save on the time-skipping server with the real workflow code and the real
activities (Stripe = localstripe behind the recording proxy, SQLite): each reason's offer,
accepted and declined, its window, never twice a year, and the refusals that change nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lifecycle.contracts.winback import CANCEL_REASONS
from tests.support.helpers import timeline
from tests.support.retention import Retained, period_end

pytestmark = pytest.mark.usefixtures("ts_env")


async def _cancel(ret: Retained, cid: str, reason: str, **params: str) -> dict:
    r = await ret.http.delete(f"/v1/customers/{cid}/subscription", params={"reason": reason, **params})
    assert r.status_code == 200, r.text
    return r.json()


def _cancel_posts(ret: Retained, sub_id: str) -> list[dict]:
    return [r.form for r in ret.stripe.posts(f"/v1/subscriptions/{sub_id}") if "cancel_at_period_end" in r.form]


@pytest.mark.parametrize(
    ("reason", "kind"), [("too_expensive", "coupon"), ("not_using", "downgrade"), ("temporary", "pause")]
)
async def test_each_reason_gets_its_offer_and_accepting_it_keeps_the_subscription(
    retained: Retained, stripe_client, reason: str, kind: str
) -> None:
    cid = await retained.subscriber("professional")
    body = await _cancel(retained, cid, reason, comment="money is tight this quarter")

    offer = body["save_offer"]
    assert (body["outcome"], offer["kind"], offer["reason"], body["cancel_at_period_end"]) == (
        "save_offered", kind, reason, True)
    sub_id = body["stripe_subscription_id"]
    # Stripe holds the cancellation while the offer is open: no renewal is charged meanwhile
    assert stripe_client.v1.subscriptions.retrieve(sub_id).cancel_at_period_end is True

    accepted = await retained.http.post(f"/v1/customers/{cid}/subscription/offers/{offer['offer_id']}/accept")
    assert accepted.status_code == 200, accepted.text
    state = await retained.state(cid)
    assert (state.stage, state.billing.cancel_at_period_end) == ("active", False)
    assert stripe_client.v1.subscriptions.retrieve(sub_id).cancel_at_period_end is False  # accepting undid it
    assert [p["cancel_at_period_end"] for p in _cancel_posts(retained, sub_id)] == ["true", "false"]
    if kind == "coupon":  # 25 % for 3 months, created and applied to the subscription
        [applied] = [r.form for r in retained.stripe.posts(f"/v1/subscriptions/{sub_id}") if "discounts[0][coupon]" in r.form]
        coupon = stripe_client.v1.coupons.retrieve(applied["discounts[0][coupon]"])
        assert (coupon.percent_off, coupon.duration, coupon.duration_in_months) == (25.0, "repeating", 3)
    elif kind == "downgrade":  # the next cheaper tier, from the period end
        assert (accepted.json()["outcome"], state.billing.pending_plan) == ("change_scheduled", "starter")
    else:  # billing paused for two months, Stripe resuming it then
        [paused] = [r.form for r in retained.stripe.posts(f"/v1/subscriptions/{sub_id}") if "pause_collection[behavior]" in r.form]
        assert paused["pause_collection[behavior]"] == "void"
        assert state.winback.paused_until is not None
        assert int(paused["pause_collection[resumes_at]"]) == int(state.winback.paused_until.timestamp())

    [row] = retained.offers(cid)
    assert (row.kind, row.reason, row.status) == (kind, reason, "accepted")
    [req] = retained.requests(cid)
    assert (req.reason, req.comment, req.outcome, req.offer_id) == (
        reason, "money is tight this quarter", "saved", offer["offer_id"])
    kinds = [e.kind for e in timeline(retained.sessions, cid)]
    assert {"cancellation_requested", "save_offer_made", "save_offer_accepted", "cancellation_saved"} <= set(kinds)


async def test_an_annual_subscriber_s_coupon_offer_takes_three_months_share_off_once(
    retained: Retained, stripe_client
) -> None:
    """25 % for 3 months on a $490 year: $30.63 off the next invoice, not 25 % off the year."""
    cid = await retained.subscriber(interval="year")
    body = await _cancel(retained, cid, "too_expensive")
    sub_id = body["stripe_subscription_id"]

    accepted = await retained.http.post(f"/v1/customers/{cid}/subscription/offers/{body['save_offer']['offer_id']}/accept")

    assert accepted.status_code == 200, accepted.text
    [applied] = [r.form for r in retained.stripe.posts(f"/v1/subscriptions/{sub_id}") if "discounts[0][coupon]" in r.form]
    coupon = stripe_client.v1.coupons.retrieve(applied["discounts[0][coupon]"])
    assert (coupon.duration, coupon.amount_off, coupon.currency, coupon.percent_off) == ("once", 3063, "usd", None)
    assert stripe_client.v1.subscriptions.retrieve(sub_id)["items"]["data"][0]["plan"]["interval"] == "year"


async def test_a_declined_offer_lets_the_cancellation_go_ahead_at_period_end(retained: Retained, stripe_client) -> None:
    cid = await retained.subscriber()
    body = await _cancel(retained, cid, "too_expensive")
    offer_id = body["save_offer"]["offer_id"]

    declined = await retained.http.post(f"/v1/customers/{cid}/subscription/offers/{offer_id}/decline")

    assert declined.status_code == 200, declined.text
    assert (declined.json()["outcome"], declined.json()["cancel_at_period_end"]) == ("cancel_scheduled", True)
    assert stripe_client.v1.subscriptions.retrieve(body["stripe_subscription_id"]).cancel_at_period_end is True
    assert [o.status for o in retained.offers(cid)] == ["declined"]
    assert [r.outcome for r in retained.requests(cid)] == ["cancel_scheduled"]
    # a decline is final: taking the offer afterwards is refused and changes nothing
    late = await retained.http.post(f"/v1/customers/{cid}/subscription/offers/{offer_id}/accept")
    assert late.status_code == 409 and "already declined" in late.json()["detail"]


async def test_an_offer_not_answered_in_its_window_expires_and_the_cancellation_goes_ahead(
    ts_env, retained: Retained, stripe_client
) -> None:
    cid = await retained.subscriber()
    body = await _cancel(retained, cid, "temporary")
    offer_id = body["save_offer"]["offer_id"]

    await ts_env.sleep(timedelta(days=6, hours=23))
    assert (await retained.state(cid)).winback.offer.status == "open"  # still open
    await ts_env.sleep(timedelta(hours=2))

    from tests.support.helpers import eventually

    await eventually(lambda: [o.status for o in retained.offers(cid)] == ["expired"], timeout=30)
    state = await retained.state(cid)
    assert (state.billing.cancel_at_period_end, state.winback.offer.status) == (True, "expired")
    assert stripe_client.v1.subscriptions.retrieve(body["stripe_subscription_id"]).cancel_at_period_end is True
    expired = await retained.http.post(f"/v1/customers/{cid}/subscription/offers/{offer_id}/accept")
    assert expired.status_code == 409 and "already expired" in expired.json()["detail"]
    assert stripe_client.v1.subscriptions.retrieve(body["stripe_subscription_id"]).cancel_at_period_end is True


async def test_a_renewal_inside_the_offer_window_ends_the_subscription_and_charges_nothing(
    ts_env, retained: Retained, stripe_client
) -> None:
    from tests.support.helpers import eventually

    cid = await retained.subscriber()
    body = await _cancel(retained, cid, "too_expensive")
    sub_id, offer_id = body["stripe_subscription_id"], body["save_offer"]["offer_id"]
    await ts_env.sleep(timedelta(days=3))  # the period ends on day 3 of the offer's 7 days

    await period_end(retained, stripe_client, sub_id)

    sub = stripe_client.v1.subscriptions.retrieve(sub_id)
    invoices = stripe_client.v1.invoices.list(params={"subscription": sub_id}).data
    assert (sub.status, [(i.status, i.amount_paid) for i in invoices]) == ("canceled", [("paid", 4900)])
    await eventually(lambda: _stage(retained, cid, "canceled"), timeout=30)
    late = await retained.http.post(f"/v1/customers/{cid}/subscription/offers/{offer_id}/accept")
    assert late.status_code == 409 and "ended meanwhile" in late.json()["detail"]
    await ts_env.sleep(timedelta(days=5))  # the window ends: the request is recorded as what became of it
    await eventually(lambda: [o.status for o in retained.offers(cid)] == ["expired"], timeout=30)
    assert [r.outcome for r in retained.requests(cid)] == ["canceled"]
    assert len(stripe_client.v1.invoices.list(params={"subscription": sub_id}).data) == 1


async def test_accepting_after_stripe_ended_the_subscription_unheard_restarts_nothing(
    ts_env, retained: Retained, stripe_client
) -> None:
    """The period ended inside the window and the webhook has not arrived yet: taking the
    offer then must not subscribe the customer again (nor charge them)."""
    cid = await retained.subscriber()
    body = await _cancel(retained, cid, "too_expensive")
    sub_id, offer_id = body["stripe_subscription_id"], body["save_offer"]["offer_id"]
    customer = str(stripe_client.v1.subscriptions.retrieve(sub_id).customer)
    stripe_client.v1.subscriptions.cancel(sub_id)  # Stripe's period end; the entity not told yet

    late = await retained.http.post(f"/v1/customers/{cid}/subscription/offers/{offer_id}/accept")

    assert late.status_code == 409 and "ended meanwhile" in late.json()["detail"], late.text
    subs = stripe_client.v1.subscriptions.list(params={"customer": customer, "status": "all"}).data
    assert [s.status for s in subs] == ["canceled"]
    assert len(stripe_client.v1.invoices.list(params={"customer": customer}).data) == 1
    assert (await retained.state(cid)).winback.offer.status == "open"  # it expires as asked
    from tests.support.helpers import eventually

    await ts_env.sleep(timedelta(days=8))
    await eventually(lambda: [o.status for o in retained.offers(cid)] == ["expired"], timeout=30)
    await eventually(lambda: _stage(retained, cid, "canceled"), timeout=30)
    assert len(stripe_client.v1.subscriptions.list(params={"customer": customer, "status": "all"}).data) == 1


async def _stage(ret: Retained, cid: str, stage: str) -> bool:
    return (await ret.state(cid)).stage == stage


async def test_a_cancel_without_a_reason_while_an_offer_is_open_withdraws_the_offer(
    ts_env, retained: Retained, stripe_client
) -> None:
    from tests.support.helpers import eventually

    cid = await retained.subscriber()
    body = await _cancel(retained, cid, "too_expensive")
    offer_id, sub_id = body["save_offer"]["offer_id"], body["stripe_subscription_id"]

    plain = await retained.http.delete(f"/v1/customers/{cid}/subscription")  # no reason: the customer has chosen
    assert plain.status_code == 200, plain.text
    assert (plain.json()["outcome"], plain.json()["cancel_at_period_end"]) == ("cancel_scheduled", True)
    await eventually(lambda: [o.status for o in retained.offers(cid)] == ["withdrawn"], timeout=30)
    assert "save_offer_withdrawn" in [e.kind for e in timeline(retained.sessions, cid)]
    late = await retained.http.post(f"/v1/customers/{cid}/subscription/offers/{offer_id}/accept")
    assert late.status_code == 409 and "already withdrawn" in late.json()["detail"]
    assert not any("discounts[0][coupon]" in r.form for r in retained.stripe.posts(f"/v1/subscriptions/{sub_id}"))

    await ts_env.sleep(timedelta(days=8))  # past the offer's window: the cancellation is not carried out again
    state = await retained.state(cid)
    assert (state.winback.offer.status, state.billing.cancel_at_period_end) == ("withdrawn", True)
    assert len(_cancel_posts(retained, sub_id)) == 1
    assert [o.status for o in retained.offers(cid)] == ["withdrawn"]


async def test_an_offer_is_made_once_a_year_and_a_reason_without_one_cancels_at_once(retained: Retained) -> None:
    cid = await retained.subscriber()
    first = await _cancel(retained, cid, "too_expensive")
    again = await _cancel(retained, cid, "too_expensive")  # asked again: the same open offer
    assert again["save_offer"]["offer_id"] == first["save_offer"]["offer_id"]
    await retained.http.post(f"/v1/customers/{cid}/subscription/offers/{first['save_offer']['offer_id']}/decline")
    undo = await retained.http.post(f"/v1/customers/{cid}/subscription", json={"plan": "professional"})
    assert undo.status_code == 201 and undo.json()["cancel_at_period_end"] is False, undo.text

    second = await _cancel(retained, cid, "temporary")  # within 12 months: no second offer

    assert (second["outcome"], second["save_offer"], second["cancel_at_period_end"]) == ("cancel_scheduled", None, True)
    assert len(retained.offers(cid)) == 1
    other = await retained.subscriber()
    switched = await _cancel(retained, other, "switched")  # the policy has no offer for it
    assert (switched["outcome"], switched["save_offer"]) == ("cancel_scheduled", None)
    assert [r.reason for r in retained.requests(other)] == ["switched"]


async def test_bad_answers_are_refused_with_the_reason_and_nothing_reaches_stripe(retained: Retained) -> None:
    cid = await retained.subscriber()
    other = await retained.subscriber()
    unknown = await retained.http.delete(f"/v1/customers/{cid}/subscription", params={"reason": "bored"})
    assert unknown.status_code == 422
    assert all(reason in unknown.text for reason in ("too_expensive", "missing_features", "not_using", "switched", "temporary", "other"))
    body = await _cancel(retained, cid, "too_expensive")
    offer_id = body["save_offer"]["offer_id"]
    before = len([r for r in retained.stripe.requests if r.method == "POST"])

    foreign = await retained.http.post(f"/v1/customers/{other}/subscription/offers/{offer_id}/accept")
    missing = await retained.http.post(f"/v1/customers/{cid}/subscription/offers/offer_nope/accept")
    ok = await retained.http.post(f"/v1/customers/{cid}/subscription/offers/{offer_id}/accept")
    used = await retained.http.post(f"/v1/customers/{cid}/subscription/offers/{offer_id}/accept")

    assert foreign.status_code == 404 and "no offer" in foreign.json()["detail"]
    assert missing.status_code == 404
    assert ok.status_code == 200, ok.text
    assert used.status_code == 409 and "already accepted" in used.json()["detail"]
    coupon_posts = [r for r in retained.stripe.requests[before:] if r.method == "POST"]
    assert len([r for r in coupon_posts if r.path == "/v1/coupons"]) == 1  # the one accepted offer only
    # a customer already canceled gets no offer: the cancellation is refused as before
    await retained.http.delete(f"/v1/customers/{other}/subscription", params={"at_once": "true"})
    late = await retained.http.delete(f"/v1/customers/{other}/subscription", params={"reason": "too_expensive"})
    assert late.status_code == 409 and retained.offers(other) == []


async def test_a_pause_resumes_billing_at_its_end(ts_env, retained: Retained) -> None:
    from tests.support.helpers import eventually

    cid = await retained.subscriber()
    body = await _cancel(retained, cid, "temporary")  # two months' pause
    await retained.http.post(f"/v1/customers/{cid}/subscription/offers/{body['save_offer']['offer_id']}/accept")
    sub_id = body["stripe_subscription_id"]

    await ts_env.sleep(timedelta(days=59))
    assert not [e for e in timeline(retained.sessions, cid) if e.kind == "subscription_resumed"]
    await ts_env.sleep(timedelta(days=2))

    await eventually(lambda: [e for e in timeline(retained.sessions, cid) if e.kind == "subscription_resumed"], timeout=30)
    resumed = [r.form for r in retained.stripe.posts(f"/v1/subscriptions/{sub_id}") if r.form.get("pause_collection") == ""]
    assert len(resumed) == 1  # the pause cleared once
    state = await retained.state(cid)
    assert (state.winback.paused_until, state.stage, state.billing.cancel_at_period_end) == (None, "active", False)


def test_the_api_takes_exactly_the_contract_reasons() -> None:
    from typing import get_args

    from starter.api.subscriptions import CancelReason

    assert get_args(CancelReason) == CANCEL_REASONS


async def test_a_plan_change_while_an_offer_holds_the_cancellation_is_refused_and_charges_nothing(
    retained: Retained, stripe_client
) -> None:
    """The hold sets ``cancel_at_period_end`` in Stripe; an upgrade meanwhile would be
    prorated and charged now while Stripe still ends the subscription at the period end."""
    cid = await retained.subscriber("professional")
    body = await _cancel(retained, cid, "too_expensive")
    sub_id = body["stripe_subscription_id"]
    invoices_before = len(stripe_client.v1.invoices.list(params={"subscription": sub_id}).data)
    plan_before = stripe_client.v1.subscriptions.retrieve(sub_id)["items"]["data"][0]["plan"]["id"]

    changed = await retained.http.patch(f"/v1/customers/{cid}/subscription", json={"plan": "business"})

    assert changed.status_code == 409, changed.text
    assert "save offer" in changed.json()["detail"] and "accept or decline" in changed.json()["detail"]
    sub = stripe_client.v1.subscriptions.retrieve(sub_id)
    assert (sub["items"]["data"][0]["plan"]["id"], sub.cancel_at_period_end) == (plan_before, True)
    assert len(stripe_client.v1.invoices.list(params={"subscription": sub_id}).data) == invoices_before
    state = await retained.state(cid)
    assert (state.billing.plan, state.winback.offer.status) == ("professional", "open")


async def test_an_offer_s_hold_keeps_the_renewal_reminder_due_inside_its_window(
    ts_env, retained: Retained, stripe_client
) -> None:
    """An annual subscriber asks to cancel ten days before the renewal: the offer's 7-day
    window holds the cancellation in Stripe, which is not yet the customer's choice, so
    the 7-day reminder still goes out and accepting keeps the same renewal campaign."""
    from tests.support.helpers import emails, eventually

    cid = await retained.subscriber(interval="year")
    state = await retained.state(cid)
    period_end = state.billing.current_period_end
    renewal_before = state.retention.renewal_workflow
    assert period_end is not None and renewal_before
    await ts_env.sleep(period_end - timedelta(days=10) - await ts_env.get_current_time())

    body = await _cancel(retained, cid, "too_expensive")
    assert body["cancel_at_period_end"] is True
    await ts_env.sleep(timedelta(days=3, hours=1))  # the 7-day reminder's time, inside the window

    def reminders() -> list[str]:
        return [m.step for m in emails(retained.sessions, cid) if m.campaign == "renewal" and m.status == "sent"]

    await eventually(lambda: "renewal_7_days" in reminders(), timeout=30)
    accepted = await retained.http.post(f"/v1/customers/{cid}/subscription/offers/{body['save_offer']['offer_id']}/accept")
    assert accepted.status_code == 200, accepted.text
    # the campaign ran to its end, never dropped, nothing skipped
    assert await retained.client.get_workflow_handle(renewal_before).result() == "reminded"
    assert [e for e in timeline(retained.sessions, cid) if e.kind == "email_skipped" and e.campaign == "renewal"] == []
