"""Subscriptions through the customer's workflow: the HTTP API's validated update, and the
trial that converts into a real subscription. Time-skipping Temporal, the real Stripe
activities against localstripe, SQLite."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Worker

from activities.store import StoreActivities
from lifecycle.contracts.billing import EnsureCustomerInput, SubscriptionResult
from lifecycle.contracts.customer import CustomerEvent
from lifecycle.contracts.ids import campaign_workflow_id, customer_workflow_id
from lifecycle.contracts.timeline import RecordEventInput
from lifecycle.models import SubscriptionChange
from starter.api.app import create_app
from starter.signals.send import signal_customer
from tests.support.helpers import customer_row, emails, eventually, timeline
from tests.support.stripe import add_card, new_customer_id, signed_event, signed_up
from worker import WORKFLOWS, build_activities, build_worker
from workflows.customer import CustomerWorkflow

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


async def _signed_up_with_a_card(client, settings, session_factory) -> str:
    """A new trialing customer who gave a card to the payment method route (pm_card_visa)."""
    cid = new_customer_id()
    await signed_up(client, settings, session_factory, cid)
    await signal_customer(
        client, cid, CustomerEvent(f"pm:{cid}", "payment_method_added", {"payment_method_id": "pm_card_visa"})
    )
    return cid


async def _active(client, cid):
    state = await _state(client, cid)
    return state if state.stage == "active" and state.billing.stripe_subscription_id else None


async def test_trial_conversion_charges_the_card_given_to_the_payment_method_route(
    running, client, stripe_settings, session_factory, stripe_client, ts_env
):
    """POST /v1/customers/{id}/payment-method with a pm_… id: the conversion attaches and charges it."""
    cid = await _signed_up_with_a_card(client, stripe_settings, session_factory)
    await ts_env.sleep(timedelta(days=14, minutes=1))

    state = await eventually(lambda: _active(client, cid), timeout=20)
    assert state.payment_method_id == "pm_card_visa"
    sub = stripe_client.v1.subscriptions.retrieve(state.billing.stripe_subscription_id)
    assert sub.status == "active"
    invoice = stripe_client.v1.invoices.retrieve(sub.latest_invoice)
    assert invoice.status == "paid" and invoice.amount_paid == 1900


# --- review fixes: races, reactivation, cancellation, trial, outages ---------------------------


def _stripe_customer(session_factory, cid: str) -> str:
    row = customer_row(session_factory, cid)
    assert row is not None and row.stripe_customer_id
    return row.stripe_customer_id


async def test_two_concurrent_subscribe_requests_make_one_subscription(
    running, client, stripe_settings, session_factory, stripe_client
):
    """Both requests pass the validator before either holds the billing lock; the second
    must see the first's subscription once it gets the lock, and be refused."""
    cid = new_customer_id()
    await signed_up(client, stripe_settings, session_factory, cid)
    base = f"/v1/customers/{cid}/subscription"

    first, second = await asyncio.gather(
        running.post(base, json={"plan": "starter", "payment_method_id": "pm_card_visa", "request_id": "a"}),
        running.post(base, json={"plan": "business", "payment_method_id": "pm_card_visa", "request_id": "b"}),
    )

    assert sorted([first.status_code, second.status_code]) == [201, 409], (first.text, second.text)
    won, lost = (first, second) if first.status_code == 201 else (second, first)
    assert "already subscribed" in lost.json()["detail"]
    subs = stripe_client.v1.subscriptions.list(
        params={"customer": _stripe_customer(session_factory, cid), "status": "all"}
    ).data
    assert [s.id for s in subs] == [won.json()["stripe_subscription_id"]]
    state = await _state(client, cid)
    assert state.billing.stripe_subscription_id == won.json()["stripe_subscription_id"]


async def test_subscribing_during_the_trial_stops_the_trial_reminders(
    running, client, stripe_settings, session_factory, ts_env
):
    cid = new_customer_id()
    await signed_up(client, stripe_settings, session_factory, cid)
    r = await running.post(
        f"/v1/customers/{cid}/subscription", json={"plan": "starter", "payment_method_id": "pm_card_visa"}
    )
    assert r.status_code == 201, r.text
    trial = client.get_workflow_handle(campaign_workflow_id(cid, "trial"))

    await ts_env.sleep(timedelta(days=14, minutes=1))

    assert await trial.result() == "subscribed"
    assert [m.step for m in emails(session_factory, cid) if m.campaign == "trial"] == []
    skipped = [e.detail for e in timeline(session_factory, cid) if e.kind == "email_skipped"]
    assert [d["step"] for d in skipped] == ["reminder_3_days", "reminder_1_day"]
    assert all("subscribed" in d["reason"] for d in skipped)
    state = await _state(client, cid)
    assert (state.stage, state.outcomes.get("trial")) == ("active", "subscribed")


async def test_reactivating_with_another_plan_moves_to_that_plan(
    running, client, stripe_settings, session_factory, stripe_client
):
    cid = new_customer_id()
    await signed_up(client, stripe_settings, session_factory, cid)
    base = f"/v1/customers/{cid}/subscription"
    created = await running.post(base, json={"plan": "starter", "payment_method_id": "pm_card_visa"})
    sub_id = created.json()["stripe_subscription_id"]
    canceling = await running.delete(base)
    assert canceling.json()["cancel_at_period_end"] is True

    again = await running.post(base, json={"plan": "business"})

    assert again.status_code == 201, again.text
    body = again.json()
    assert (body["plan"], body["cancel_at_period_end"], body["amount_cents"]) == ("business", False, 9900)
    sub = stripe_client.v1.subscriptions.retrieve(sub_id)
    assert sub["items"]["data"][0]["plan"]["id"] == "lifecycle-business-month-9900-usd"
    assert sub.cancel_at_period_end is False
    state = await _state(client, cid)
    assert (state.plan, state.billing.plan, state.billing.cancel_at_period_end) == ("business", "business", False)


async def _scheduled_downgrade(running, client, stripe_settings, session_factory) -> tuple[str, str, str]:
    """A business subscriber with a downgrade to professional waiting for the period end."""
    cid = new_customer_id()
    await signed_up(client, stripe_settings, session_factory, cid)
    base = f"/v1/customers/{cid}/subscription"
    created = await running.post(base, json={"plan": "business", "payment_method_id": "pm_card_visa"})
    assert created.status_code == 201, created.text
    down = await running.patch(base, json={"plan": "professional", "request_id": "down"})
    assert down.json()["outcome"] == "change_scheduled", down.text
    return cid, created.json()["stripe_subscription_id"], campaign_workflow_id(cid, "plan-change", "down")


async def test_a_cancellation_by_webhook_drops_the_pending_downgrade(
    running, client, stripe_settings, session_factory, stripe_client, ts_env
):
    cid, sub_id, child_id = await _scheduled_downgrade(running, client, stripe_settings, session_factory)
    stripe_client.v1.subscriptions.cancel(sub_id)  # e.g. in the Stripe dashboard
    _e, body, headers = signed_event(
        "customer.subscription.deleted", stripe_client.v1.subscriptions.retrieve(sub_id), created=int(time.time()) + 5
    )
    assert (await running.post("/webhooks/stripe", content=body, headers=headers)).status_code == 200

    state = await eventually(lambda: _in_stage(client, cid, "canceled"), timeout=20)
    assert (state.billing.pending_plan, state.billing.pending_change_workflow) == (None, None)
    child = client.get_workflow_handle(child_id)
    await eventually(lambda: _closed(child), timeout=20)
    await ts_env.sleep(timedelta(days=32))
    assert (await child.describe()).status != WorkflowExecutionStatus.FAILED


async def test_a_downgrade_whose_subscription_ended_unheard_ends_cleanly_and_reports(
    running, client, stripe_settings, session_factory, stripe_client, ts_env
):
    """The subscription ended in Stripe and the entity never heard (no webhook): the
    downgrade child does not fail at the period end; it reports that it had nothing to change."""
    cid, sub_id, child_id = await _scheduled_downgrade(running, client, stripe_settings, session_factory)
    stripe_client.v1.subscriptions.cancel(sub_id)

    await ts_env.sleep(timedelta(days=32))

    result = await client.get_workflow_handle(child_id, result_type=SubscriptionResult).result()
    assert result.outcome == "change_dropped" and "canceled" in (result.reason or "")
    state = await eventually(lambda: _no_pending(client, cid), timeout=20)
    assert state.plan == "business"


async def _in_stage(client, cid, stage):
    state = await _state(client, cid)
    return state if state.stage == stage else None


async def _no_pending(client, cid):
    state = await _state(client, cid)
    return state if state.billing.pending_plan is None and state.billing.pending_change_workflow is None else None


async def _closed(handle) -> bool:
    return (await handle.describe()).status != WorkflowExecutionStatus.RUNNING


@pytest.fixture
async def outage_worker(client, stripe_settings, session_factory, synced, recording) -> AsyncIterator[object]:
    """A worker whose Stripe calls go through the recording proxy (which can fail them)."""
    settings = stripe_settings.model_copy(update={"stripe_api_base": recording.url})
    async with build_worker(client, settings, session_factory):
        yield recording


async def test_a_stripe_outage_at_trial_end_is_waited_out(
    outage_worker, client, stripe_settings, session_factory, stripe_client, ts_env
):
    cid = await _signed_up_with_a_card(client, stripe_settings, session_factory)
    await eventually(lambda: _pm_id(client, cid))
    outage_worker.fail_with["/v1/"] = 503  # Stripe is down when the trial ends

    await ts_env.sleep(timedelta(days=14, minutes=1))
    await eventually(lambda: len(outage_worker.requests) >= 2, timeout=20)  # the conversion is retrying
    await ts_env.sleep(timedelta(hours=3))  # a long outage
    assert (await _state(client, cid)).stage == "trialing"  # still trying, not given up
    assert customer_row(session_factory, cid).stage == "trialing"

    outage_worker.fail_with.clear()  # Stripe is back
    await ts_env.sleep(timedelta(minutes=11))
    state = await eventually(lambda: _active(client, cid), timeout=30)
    subs = stripe_client.v1.subscriptions.list(params={"customer": _stripe_customer(session_factory, cid)}).data
    assert [s.id for s in subs] == [state.billing.stripe_subscription_id]
    changes = [(e.from_stage, e.to_stage) for e in timeline(session_factory, cid) if e.kind == "stage_changed"]
    assert changes == [(None, "trialing"), ("trialing", "active")]


async def test_a_stripe_refusal_at_trial_end_is_past_due_with_the_reason_on_the_timeline(
    outage_worker, client, stripe_settings, session_factory, ts_env
):
    cid = await _signed_up_with_a_card(client, stripe_settings, session_factory)
    await eventually(lambda: _pm_id(client, cid))
    outage_worker.fail_with["/v1/"] = 400  # Stripe refuses (not retryable)

    await ts_env.sleep(timedelta(days=14, minutes=1))

    await eventually(lambda: _in_stage(client, cid, "past_due"), timeout=20)
    change = [e for e in timeline(session_factory, cid) if e.kind == "stage_changed"][-1]
    assert (change.from_stage, change.to_stage) == ("trialing", "past_due")
    assert "Stripe refused the request (400)" in change.detail["reason"]


async def _pm_id(client, cid):
    return (await _state(client, cid)).payment_method_id


async def _update_accepted(client, cid: str) -> bool:
    history = await client.get_workflow_handle(customer_workflow_id(cid)).fetch_history()
    return any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED for e in history.events)


class HeldTrialRecord(StoreActivities):
    """The store holds the signup's stage change until the test releases it (a busy database)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        self.recorded = asyncio.Event()

    @activity.defn(name="record_event")
    async def record_event(self, input: RecordEventInput) -> bool:
        if input.to_stage != "trialing":
            return await super().record_event(input)
        self.held.set()
        await self.release.wait()
        try:
            return await super().record_event(input)
        finally:
            self.recorded.set()


async def test_a_subscription_answered_before_the_trial_began_is_not_moved_back_to_trialing(
    client, stripe_settings, session_factory, synced
):
    """The update arrives while the entity still records its signup; Stripe answers first."""
    app = create_app(stripe_settings, temporal=client)
    acts = [a for a in build_activities(stripe_settings, session_factory) if a.__name__ != "record_event"]
    store = HeldTrialRecord(session_factory)
    acts.append(store.record_event)
    worker = Worker(client, task_queue=stripe_settings.task_queue, workflows=list(WORKFLOWS), activities=acts)
    cid = new_customer_id()
    async with worker, app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api.test", headers=AUTH, timeout=60
    ) as http:
        await signed_up(client, stripe_settings, session_factory, cid)
        await asyncio.wait_for(store.held.wait(), timeout=30)  # the signup's record is under way
        post = asyncio.create_task(http.post(
            f"/v1/customers/{cid}/subscription", json={"plan": "starter", "payment_method_id": "pm_card_visa"}
        ))
        await eventually(lambda: _update_accepted(client, cid), timeout=30)  # the entity has the request
        store.release.set()  # now the slow record finishes, after the request arrived
        r = await post
        assert r.status_code == 201, r.text
        await asyncio.wait_for(store.recorded.wait(), timeout=30)
        state = await _state(client, cid)
    assert state.stage == "active"
    assert customer_row(session_factory, cid).stage == "active"
    changes = [(e.from_stage, e.to_stage) for e in timeline(session_factory, cid) if e.kind == "stage_changed"]
    assert changes == [(None, "trialing"), ("trialing", "active")]
