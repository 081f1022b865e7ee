"""Subscriptions through the customer's workflow: the HTTP API's validated update, and the
trial that converts into a real subscription. Time-skipping Temporal, the real Stripe
activities against localstripe, SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from lifecycle.billing_messages import EnsureCustomerInput
from lifecycle.messages import CustomerEvent, customer_workflow_id
from lifecycle.models import SubscriptionChange
from starter.api.app import create_app
from starter.events import signal_customer, start_input
from tests.helpers import add_customer, customer_row, eventually
from tests.stripe_support import add_card, new_customer_id
from worker import build_worker
from workflows.customer import CustomerWorkflow

pytest_plugins = ["tests.stripe_fixtures"]

AUTH = {"Authorization": "Bearer test-key"}


@pytest.fixture
async def running(stripe_settings, client, session_factory, synced) -> AsyncIterator[httpx.AsyncClient]:
    """The API and a worker with the real activities (Stripe = localstripe)."""
    app = create_app(stripe_settings, temporal=client)
    async with build_worker(client, stripe_settings, session_factory), app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test", headers=AUTH, timeout=60
        ) as http:
            yield http


async def signed_up(client, settings, session_factory, cid: str) -> None:
    add_customer(session_factory, cid)
    await signal_customer(
        client, cid, CustomerEvent(f"signup:{cid}", "signup"),
        start=start_input(settings, cid, "starter"), task_queue=settings.task_queue,
    )


async def _state(client, cid):
    return await client.get_workflow_handle(customer_workflow_id(cid)).query(CustomerWorkflow.state)


@pytest.mark.parametrize("plan", ["starter", "professional", "business", "enterprise"])
async def test_subscribe_to_any_tier_through_the_api(
    plan, running, client, stripe_settings, session_factory, stripe_client
):
    cid = new_customer_id(plan)
    await signed_up(client, stripe_settings, session_factory, cid)

    r = await running.post(
        f"/v1/customers/{cid}/subscription", json={"plan": plan, "payment_method_id": "pm_card_visa"}
    )

    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["outcome"], body["status"], body["plan"], body["interval"]) == ("active", "active", plan, "month")
    state = await _state(client, cid)
    assert (state.stage, state.plan, state.billing.stripe_subscription_id) == (
        "active", plan, body["stripe_subscription_id"],
    )
    assert stripe_client.v1.subscriptions.retrieve(body["stripe_subscription_id"]).status == "active"
    assert customer_row(session_factory, cid).stage == "active"
    mirror = await running.get(f"/v1/customers/{cid}/subscription")
    assert (mirror.json()["plan"], mirror.json()["status"]) == (plan, "active")


async def test_bad_requests_are_refused_with_a_reason_and_change_nothing(
    running, client, stripe_settings, session_factory
):
    cid = new_customer_id()
    await signed_up(client, stripe_settings, session_factory, cid)

    no_sub = await running.patch(f"/v1/customers/{cid}/subscription", json={"plan": "business"})
    unknown = await running.post(f"/v1/customers/{cid}/subscription", json={"plan": "platinum"})
    no_card = await running.post(f"/v1/customers/{cid}/subscription", json={"plan": "business"})
    nobody = await running.delete("/v1/customers/nobody/subscription")

    assert no_sub.status_code == 409 and "subscribe first" in no_sub.json()["detail"]
    assert unknown.status_code == 422 and "unknown plan" in unknown.text
    assert no_card.status_code == 402 and "payment method" in no_card.json()["detail"]
    assert nobody.status_code == 404
    state = await _state(client, cid)
    assert state.stage == "trialing" and state.billing.stripe_subscription_id is None


async def test_upgrade_now_downgrade_at_period_end_and_cancel(
    running, client, stripe_settings, session_factory, stripe_client, ts_env
):
    cid = new_customer_id()
    await signed_up(client, stripe_settings, session_factory, cid)
    created = await running.post(
        f"/v1/customers/{cid}/subscription",
        json={"plan": "starter", "payment_method_id": "pm_card_visa", "request_id": "r1"},
    )
    sub_id = created.json()["stripe_subscription_id"]
    # A client retry with the same request id gets the first answer, not a second subscription.
    retried = await running.post(
        f"/v1/customers/{cid}/subscription",
        json={"plan": "starter", "payment_method_id": "pm_card_visa", "request_id": "r1"},
    )
    assert retried.status_code == 201 and retried.json()["stripe_subscription_id"] == sub_id

    up = await running.patch(f"/v1/customers/{cid}/subscription", json={"plan": "business"})
    assert up.status_code == 200, up.text
    assert (up.json()["plan"], up.json()["amount_cents"]) == ("business", 9900)

    down = await running.patch(f"/v1/customers/{cid}/subscription", json={"plan": "professional"})
    assert down.json()["outcome"] == "change_scheduled"
    assert (down.json()["plan"], down.json()["pending_plan"]) == ("business", "professional")
    await ts_env.sleep(timedelta(days=32))  # past the paid period
    await eventually(lambda: _plan_is(client, cid, "professional"), timeout=20)
    item = stripe_client.v1.subscriptions.retrieve(sub_id)["items"]["data"][0]
    assert item["plan"]["id"] == "lifecycle-professional-month-4900-usd"

    later = await running.delete(f"/v1/customers/{cid}/subscription")
    assert later.json()["cancel_at_period_end"] is True and later.json()["status"] == "active"
    now = await running.delete(f"/v1/customers/{cid}/subscription", params={"at_once": "true"})
    assert now.json()["status"] == "canceled"
    state = await _state(client, cid)
    assert state.stage == "canceled"
    with session_factory() as s:
        history = s.scalars(
            select(SubscriptionChange.plan_code).where(SubscriptionChange.customer_id == cid).order_by(
                SubscriptionChange.id
            )
        ).all()
    assert history == ["starter", "business", "professional", "professional"]


async def _plan_is(client, cid, plan) -> bool:
    return (await _state(client, cid)).plan == plan


async def test_trial_conversion_creates_a_real_subscription(
    running, client, stripe_settings, session_factory, stripe_client, stripe_acts, ts_env
):
    cid = new_customer_id()
    await signed_up(client, stripe_settings, session_factory, cid)
    cus = await stripe_acts.ensure_customer(EnsureCustomerInput(cid, f"{cid}:customer"))
    add_card(stripe_client, cus.stripe_customer_id)  # e.g. through Stripe Elements
    await signal_customer(client, cid, CustomerEvent(f"pm:{cid}", "payment_method_added"))

    await ts_env.sleep(timedelta(days=14, minutes=1))

    state = await eventually(lambda: _active(client, cid), timeout=20)
    subs = stripe_client.v1.subscriptions.list(params={"customer": cus.stripe_customer_id}).data
    assert [s.id for s in subs] == [state.billing.stripe_subscription_id]
    assert subs[0].status == "active" and subs[0]["items"]["data"][0]["plan"]["amount"] == 1900
    assert customer_row(session_factory, cid).stage == "active"


async def _active(client, cid):
    state = await _state(client, cid)
    return state if state.stage == "active" and state.billing.stripe_subscription_id else None


async def test_trial_conversion_charges_the_card_given_to_the_payment_method_route(
    running, client, stripe_settings, session_factory, stripe_client, ts_env
):
    """POST /v1/customers/{id}/payment-method with a pm_… id: the conversion attaches and charges it."""
    cid = new_customer_id()
    await signed_up(client, stripe_settings, session_factory, cid)
    await signal_customer(
        client, cid, CustomerEvent(f"pm:{cid}", "payment_method_added", {"payment_method_id": "pm_card_visa"})
    )
    await ts_env.sleep(timedelta(days=14, minutes=1))

    state = await eventually(lambda: _active(client, cid), timeout=20)
    assert state.payment_method_id == "pm_card_visa"
    sub = stripe_client.v1.subscriptions.retrieve(state.billing.stripe_subscription_id)
    assert sub.status == "active"
    invoice = stripe_client.v1.invoices.retrieve(sub.latest_invoice)
    assert invoice.status == "paid" and invoice.amount_paid == 1900
