"""Record the billing histories the replay tests keep (tests/histories/*billing*.json,
plan_change_*.json): the customer workflow's subscription paths and the downgrade child.

Run after an intended, versioned change to workflows/subscription.py or workflows/plan_change.py:

    .venv/bin/python -m tests.record_billing_histories vN   # a new suffix

Keep the old files (rename them with a suffix): replaying histories recorded by older
code is what proves a change is safe for running workflows.

Everything runs for real: the time-skipping server, the worker from worker.py with the
real Stripe activities against a localstripe of its own (free port, state in memory), the
HTTP API in process for the subscription requests and the Stripe webhooks. The webhook
events localstripe never sends (invoice.payment_failed, invoice.paid, and the
subscription events, built here so their order is fixed) are built around real
localstripe objects and signed as Stripe signs them. The histories carry ids only: the
customers' emails and names stay in the database and in localstripe (checked below).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from lifecycle.billing.catalog_sync import plan_id_for
from lifecycle.billing.client import make_stripe_client
from lifecycle.contracts import catalog
from lifecycle.contracts.customer import CustomerEvent, CustomerState
from lifecycle.contracts.ids import campaign_workflow_id, customer_workflow_id
from lifecycle.settings import Settings
from starter.api.app import create_app
from starter.signals.send import signal_customer, start_input
from tests.record_histories import main, save, stripe_recording
from tests.support.helpers import add_customer
from tests.support.stripe import add_card, signed_event
from workflows.customer import CustomerWorkflow

API_KEY = "record-key"

# Personal data the histories must not carry (the customers' rows and Stripe customers have it).
PII = {
    "rec-b1": ("billing-trial@example.test", "Trial Customer"),
    "rec-b2": ("billing-changes@example.test", "Changing Customer"),
    "dunning": ("billing-dunning@example.test", "Dunning Customer"),
    "rec-b3": ("billing-ended@example.test", "Ended Customer"),
    "rec-b4": ("billing-interval@example.test", "Annual Customer"),
}


class RecordingFailed(RuntimeError):
    pass


async def _until(
    what: str, probe: Callable[[], Awaitable[CustomerState]], ok: Callable[[CustomerState], bool]
) -> CustomerState:
    deadline = time.monotonic() + 30
    while True:
        state = await probe()
        if ok(state):
            return state
        if time.monotonic() > deadline:
            raise RecordingFailed(f"{what}: not reached in 30 s (last state: {state})")
        await asyncio.sleep(0.1)


def _expect(what: str, response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise RecordingFailed(f"{what}: HTTP {response.status_code}: {response.text}")
    return dict(response.json())


async def record(suffix: str = "v1") -> list[Path]:
    written: list[Path] = []
    async with stripe_recording("record-billing", api_keys=[API_KEY]) as rec:
        stripe = make_stripe_client(rec.settings)
        app = create_app(rec.settings, temporal=rec.client)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://api.record",
                headers={"Authorization": f"Bearer {API_KEY}"},
                timeout=60,
            ) as api,
        ):
            histories = await _run_paths(rec.env, rec.settings, rec.sessions, stripe, api)
        for name, wid in histories.items():
            path = await save(rec.client, name, wid, suffix)
            leaked = [v for pair in PII.values() for v in pair if v in path.read_text()]
            if leaked:
                path.unlink()
                raise RecordingFailed(f"{name}: the history carries personal data {leaked}")
            written.append(path)
    return written


async def _run_paths(
    env: WorkflowEnvironment, settings: Settings, sessions: Any, stripe: Any, api: httpx.AsyncClient
) -> dict[str, str]:
    """Run the three customers' billing paths; the workflow id of each history to keep."""
    client: Client = env.client

    async def state(cid: str) -> CustomerState:
        return await client.get_workflow_handle(customer_workflow_id(cid)).query(CustomerWorkflow.state)

    async def signed_up(cid: str) -> None:
        email, name = PII[cid]
        add_customer(sessions, cid, email=email, name=name)
        await signal_customer(
            client, cid, CustomerEvent(f"signup:{cid}", "signup"),
            start=start_input(settings, cid, "starter"), task_queue=settings.task_queue,
        )

    # 1. subscription changes through the HTTP API (the validated update): subscribe during
    #    the trial (the trial hears it: no more reminders), upgrade now, downgrade at the
    #    period end (a PlanChangeWorkflow child whose timer fires and applies it), cancel at
    #    the period end, reactivate on a higher tier (undo the cancellation, then upgrade).
    cid = "rec-b2"
    base = f"/v1/customers/{cid}/subscription"
    await signed_up(cid)
    _expect("subscribe", await api.post(
        base, json={"plan": "starter", "payment_method_id": "pm_card_visa", "request_id": "create"}), 201)
    up = _expect("upgrade", await api.patch(base, json={"plan": "business", "request_id": "upgrade"}), 200)
    if up["plan"] != "business":
        raise RecordingFailed(f"upgrade: {up}")
    down = _expect("downgrade", await api.patch(base, json={"plan": "professional", "request_id": "downgrade"}), 200)
    if down["outcome"] != "change_scheduled":
        raise RecordingFailed(f"downgrade: {down}")
    plan_change_id = campaign_workflow_id(cid, "plan-change", "downgrade")
    await env.sleep(timedelta(days=32))  # past the paid period: the child applies the downgrade
    await client.get_workflow_handle(plan_change_id).result()
    await _until("downgrade applied", lambda: state(cid),
                 lambda s: s.plan == "professional" and s.billing.pending_plan is None)
    cancel = _expect("cancel", await api.delete(base, params={"request_id": "cancel"}), 200)
    if not cancel["cancel_at_period_end"]:
        raise RecordingFailed(f"cancel at period end: {cancel}")
    again = _expect("reactivate", await api.post(base, json={"plan": "business", "request_id": "reactivate"}), 201)
    if again["cancel_at_period_end"] or again["status"] != "active" or again["plan"] != "business":
        raise RecordingFailed(f"reactivate: {again}")
    await _until("active on business after reactivating", lambda: state(cid),
                 lambda s: s.stage == "active" and not s.billing.cancel_at_period_end and s.plan == "business")

    # 2. a trial that converts: the card given to the payment-method route is on file when
    #    the trial ends, so the entity subscribes for real in Stripe.
    cid = "rec-b1"
    await signed_up(cid)
    await signal_customer(
        client, cid, CustomerEvent("pm:rec-b1", "payment_method_added", {"payment_method_id": "pm_card_visa"})
    )
    await env.sleep(timedelta(days=14, minutes=1))
    await client.get_workflow_handle(campaign_workflow_id(cid, "trial")).result()
    await _until("trial converted", lambda: state(cid),
                 lambda s: s.stage == "active" and s.billing.stripe_subscription_id is not None)
    # rec-b2 subscribed during its trial: that trial skipped its reminders and ended "subscribed"
    subscribed_trial = campaign_workflow_id("rec-b2", "trial")
    if (outcome := await client.get_workflow_handle(subscribed_trial).result()) != "subscribed":
        raise RecordingFailed(f"rec-b2's trial ended {outcome!r}, not 'subscribed'")

    # 3. dunning through the Stripe webhook path: a subscription made in the Stripe
    #    dashboard (the customer is adopted: signal-with-start, origin "stripe"), then
    #    invoice.payment_failed -> past_due, invoice.paid -> active, a downgrade scheduled
    #    through the API, then deleted -> canceled, which drops the pending downgrade.
    email, name = PII["dunning"]
    cus = stripe.v1.customers.create(params={"email": email, "name": name})
    add_card(stripe, cus.id)
    plan = catalog.get_plan("professional")
    sub = stripe.v1.subscriptions.create(
        params={
            "customer": cus.id,
            "items": [{"plan": plan_id_for("professional", "month", plan.price_cents("month"))}],
        }
    )
    invoice = stripe.v1.invoices.retrieve(sub.latest_invoice).to_dict()
    now = int(time.time())

    async def webhook(type_: str, obj: Any, created: int) -> None:
        _e, body, headers = signed_event(type_, obj, created=created)
        _expect(type_, await api.post("/webhooks/stripe", content=body, headers=headers), 200)

    await webhook("customer.subscription.created", sub, now)
    await _until("adopted and active", lambda: state(cus.id), lambda s: s.stage == "active")
    await webhook("invoice.payment_failed", {**invoice, "status": "open", "attempt_count": 2, "amount_paid": 0}, now + 1)
    await _until("past due", lambda: state(cus.id), lambda s: s.stage == "past_due")
    await webhook("invoice.paid", invoice, now + 2)
    await _until("paid again", lambda: state(cus.id), lambda s: s.stage == "active")
    down = _expect("dunning downgrade", await api.patch(
        f"/v1/customers/{cus.id}/subscription", json={"plan": "starter", "request_id": "down"}), 200)
    if down["outcome"] != "change_scheduled":
        raise RecordingFailed(f"dunning downgrade: {down}")
    stripe.v1.subscriptions.cancel(sub.id)
    await webhook("customer.subscription.deleted", stripe.v1.subscriptions.retrieve(sub.id), now + 3)
    await _until("canceled, downgrade dropped", lambda: state(cus.id),
                 lambda s: s.stage == "canceled" and s.billing.pending_change_workflow is None)

    # 4. a downgrade whose subscription ended unheard (canceled in Stripe, no webhook): at
    #    the period end the PlanChangeWorkflow child reports it and ends "change_dropped".
    cid = "rec-b3"
    base = f"/v1/customers/{cid}/subscription"
    await signed_up(cid)
    made = _expect("subscribe b3", await api.post(
        base, json={"plan": "business", "payment_method_id": "pm_card_visa", "request_id": "create"}), 201)
    _expect("downgrade b3", await api.patch(base, json={"plan": "starter", "request_id": "down"}), 200)
    stripe.v1.subscriptions.cancel(made["stripe_subscription_id"])
    dropped_id = campaign_workflow_id(cid, "plan-change", "down")
    await env.sleep(timedelta(days=32))
    dropped = await client.get_workflow_handle(dropped_id).result()
    if dropped.get("outcome") != "change_dropped":
        raise RecordingFailed(f"downgrade of an ended subscription: {dropped}")
    await _until("dropped downgrade heard", lambda: state(cid), lambda s: s.billing.pending_change_workflow is None)

    # 5. annual to monthly on the same tier: scheduled for the end of the paid year (a
    #    PlanChangeWorkflow child), nothing invoiced now.
    cid = "rec-b4"
    base = f"/v1/customers/{cid}/subscription"
    await signed_up(cid)
    _expect("subscribe b4", await api.post(base, json={
        "plan": "professional", "interval": "year", "payment_method_id": "pm_card_visa", "request_id": "create"}), 201)
    monthly = _expect("to monthly", await api.patch(base, json={"interval": "month", "request_id": "monthly"}), 200)
    if monthly["outcome"] != "change_scheduled":
        raise RecordingFailed(f"annual to monthly: {monthly}")
    interval_id = campaign_workflow_id(cid, "plan-change", "monthly")
    await env.sleep(timedelta(days=366))
    await client.get_workflow_handle(interval_id).result()
    await _until("billed monthly", lambda: state(cid),
                 lambda s: s.billing.interval == "month" and s.billing.pending_interval is None)

    await asyncio.sleep(1)  # let the last workflow tasks complete before reading histories
    return {
        "customer_billing_subscription_changes": customer_workflow_id("rec-b2"),
        "plan_change_downgrade": plan_change_id,
        "customer_billing_trial_conversion": customer_workflow_id("rec-b1"),
        "customer_billing_dunning_stages": customer_workflow_id(cus.id),
        "trial_subscribed": subscribed_trial,
        "plan_change_dropped": dropped_id,
        "customer_billing_interval_change": customer_workflow_id("rec-b4"),
        "plan_change_interval": interval_id,
    }


if __name__ == "__main__":
    main(record)
