"""POST /webhooks/stripe: signatures, once-only recording, the mirror, the hand-over.

Events localstripe never sends (customer.subscription.updated, invoice.payment_failed)
are built around real localstripe objects and signed by tests/support/stripe.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select
from temporalio.service import RPCError, RPCStatusCode

from lifecycle.billing.catalog_sync import sync_catalog
from lifecycle.billing.client import make_stripe_client
from lifecycle.contracts.billing import EnsureCustomerInput
from lifecycle.contracts.ids import customer_workflow_id
from lifecycle.models import Customer, Invoice, StripeEvent, Subscription, SubscriptionChange
from starter.api.app import create_app
from starter.dev.localstripe import free_port, start_localstripe
from tests.support.helpers import customer_row, eventually, timeline
from tests.support.stripe import (
    FAILING_CARD,
    GOOD_CARD,
    WEBHOOK_SECRET,
    add_card,
    new_customer_id,
    sign,
    signed_event,
    signed_up,
    subscribed,
)
from worker import build_worker
from workflows.customer import CustomerWorkflow


@pytest.fixture
async def api(stripe_settings, client) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(stripe_settings, temporal=client)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
            yield http


def count_events(session_factory) -> int:
    with session_factory() as s:
        return s.scalar(select(func.count()).select_from(StripeEvent))


async def test_bad_signature_stale_timestamp_and_tampered_body_are_refused_with_nothing_recorded(
    api, session_factory, stripe_acts, stripe_client
):
    _cid, res = await subscribed(session_factory, stripe_acts, stripe_client)
    sub = stripe_client.v1.subscriptions.retrieve(res.stripe_subscription_id)

    _ev, body, headers = signed_event("customer.subscription.updated", sub, secret="whsec_wrong")
    wrong = await api.post("/webhooks/stripe", content=body, headers=headers)
    _ev, body, headers = signed_event("customer.subscription.updated", sub, sign_at=int(time.time()) - 3600)
    stale = await api.post("/webhooks/stripe", content=body, headers=headers)
    _ev, body, headers = signed_event("customer.subscription.updated", sub)
    tampered = await api.post(
        "/webhooks/stripe", content=body.replace(b'"active"', b'"canceled"'), headers=headers
    )
    missing = await api.post("/webhooks/stripe", content=body, headers={"Content-Type": "application/json"})

    assert [r.status_code for r in (wrong, stale, tampered, missing)] == [400, 400, 400, 400]
    assert "stale" in stale.json()["detail"] and "mismatch" in tampered.json()["detail"]
    assert count_events(session_factory) == 0
    metrics = (await api.get("/metrics")).text
    for reason in ("mismatch", "stale", "missing"):
        assert f'lifecycle_stripe_webhook_signature_failures_total{{reason="{reason}"}}' in metrics


async def test_a_redelivered_event_is_processed_once(api, session_factory, stripe_acts, stripe_client):
    cid, res = await subscribed(session_factory, stripe_acts, stripe_client)
    sub = stripe_client.v1.subscriptions.retrieve(res.stripe_subscription_id).to_dict()
    sub["status"] = "past_due"  # what Stripe would send after a failed renewal
    event, body, headers = signed_event("customer.subscription.updated", sub, created=int(time.time()) + 5)

    first = await api.post("/webhooks/stripe", content=body, headers=headers)
    again = await api.post("/webhooks/stripe", content=body, headers=headers)

    assert first.status_code == again.status_code == 200
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
    with session_factory() as s:
        row = s.get(StripeEvent, event["id"])
        assert (row.status, row.attempts) == ("processed", 1)
        statuses = s.scalars(
            select(SubscriptionChange.status).where(SubscriptionChange.customer_id == cid).order_by(
                SubscriptionChange.id
            )
        ).all()
        assert statuses == ["active", "past_due"]  # one history row for the event, not two


async def test_out_of_order_subscription_updates_leave_the_newest_state(
    api, session_factory, stripe_acts, stripe_client
):
    cid, res = await subscribed(session_factory, stripe_acts, stripe_client, plan="starter")
    base = stripe_client.v1.subscriptions.retrieve(res.stripe_subscription_id).to_dict()
    t0 = int(time.time()) + 10
    newer = {**base, "status": "past_due"}
    older = {**base, "status": "active", "cancel_at_period_end": True}
    newest = {**base, "status": "active"}

    for obj, created in ((newer, t0 + 20), (older, t0 + 10)):  # delivered newest-first
        _e, body, headers = signed_event("customer.subscription.updated", obj, created=created)
        assert (await api.post("/webhooks/stripe", content=body, headers=headers)).status_code == 200

    with session_factory() as s:
        row = s.scalar(select(Subscription).where(Subscription.stripe_subscription_id == base["id"]))
        assert (row.status, row.cancel_at_period_end, row.stripe_version_ts) == ("past_due", False, t0 + 20)
        history = s.scalars(
            select(SubscriptionChange.status).where(SubscriptionChange.customer_id == cid).order_by(
                SubscriptionChange.id
            )
        ).all()
        assert history == ["active", "past_due"]

    _e, body, headers = signed_event("customer.subscription.updated", newest, created=t0 + 30)
    await api.post("/webhooks/stripe", content=body, headers=headers)
    with session_factory() as s:
        row = s.scalar(select(Subscription).where(Subscription.stripe_subscription_id == base["id"]))
        assert row.status == "active"


async def test_events_the_engine_does_not_use_are_acknowledged_and_logged(api, session_factory, caplog):
    event, body, headers = signed_event("balance.available", {"object": "balance", "available": []})
    with caplog.at_level("INFO", logger="lifecycle.billing.service"):
        r = await api.post("/webhooks/stripe", content=body, headers=headers)
    assert r.status_code == 200
    with session_factory() as s:
        assert s.get(StripeEvent, event["id"]).status == "ignored"
    assert any(event["id"] in m and "not used" in m for m in caplog.messages)


async def test_a_failed_event_is_listed_and_replayable(api, session_factory, stripe_settings, client):
    """A payload the mirror cannot read is recorded as failed with its reason, counted,
    and `replay` reprocesses it (here it fails again, for the same reason)."""
    from starter.api.stripe_webhooks import process_and_hand_over

    event, body, headers = signed_event("customer.subscription.updated", {"object": "subscription", "id": "sub_x"})
    assert (await api.post("/webhooks/stripe", content=body, headers=headers)).status_code == 200
    with session_factory() as s:
        row = s.get(StripeEvent, event["id"])
        assert row.status == "failed" and "customer" in row.error
    assert 'lifecycle_stripe_webhook_failures_total{stage="mirror",type="customer.subscription.updated"}' in (
        await api.get("/metrics")
    ).text
    status = await process_and_hand_over(
        session_factory, client, stripe_settings, event["id"], "replay", force=True
    )
    assert status == "failed"
    with session_factory() as s:
        assert s.get(StripeEvent, event["id"]).attempts == 2


async def test_invoice_payment_failed_moves_the_customer_to_past_due_and_paid_back_to_active(
    api, session_factory, stripe_acts, stripe_client, client, stripe_settings
):
    """invoice.payment_failed and invoice.paid never come from localstripe: built around
    the customer's real invoice and signed."""
    cid, res = await subscribed(session_factory, stripe_acts, stripe_client)
    invoice = stripe_client.v1.invoices.retrieve(res.latest_invoice_id).to_dict()
    async with build_worker(client, stripe_settings, session_factory):
        sub = stripe_client.v1.subscriptions.retrieve(res.stripe_subscription_id)
        _e, body, headers = signed_event("customer.subscription.created", sub)
        await api.post("/webhooks/stripe", content=body, headers=headers)
        handle = client.get_workflow_handle(customer_workflow_id(cid))
        await eventually(lambda: _stage(handle, "active"))

        failed = {**invoice, "status": "open", "attempt_count": 2, "amount_paid": 0}
        _e, body, headers = signed_event("invoice.payment_failed", failed, created=int(time.time()) + 1)
        await api.post("/webhooks/stripe", content=body, headers=headers)
        # the timeline, not the live stage: the dunning it starts finds the invoice paid in
        # Stripe (the payload is made up around a paid invoice) and may end at once
        await eventually(lambda: "past_due" in _stages(session_factory, cid))

        _e, body, headers = signed_event("invoice.paid", invoice, created=int(time.time()) + 2)
        await api.post("/webhooks/stripe", content=body, headers=headers)
        await eventually(lambda: _stage(handle, "active"))
    assert customer_row(session_factory, cid).stage == "active"
    moves = _stages(session_factory, cid)
    assert moves[moves.index("past_due"):][-1] == "active"  # past due, then active again


def _stages(sessions, cid: str) -> list[str]:
    return [e.to_stage for e in timeline(sessions, cid) if e.kind == "stage_changed"]


async def _stage(handle, stage: str) -> bool:
    """The entity is at ``stage``; False while it is not started yet (the relay starts it)."""
    try:
        return (await handle.query(CustomerWorkflow.state)).stage == stage
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise


async def test_localstripes_own_webhooks_reach_the_api_and_a_dashboard_subscription_gets_a_lifecycle(
    stripe_settings, client, session_factory
):
    """A customer and subscription made directly in Stripe (not through the engine): the
    signed events localstripe sends reach the running API, fill the mirror, and start the
    customer's workflow, which fetches the customer's details and marks them active."""
    with start_localstripe() as ls:
        settings = stripe_settings.model_copy(update={"stripe_api_base": ls.url})
        stripe_client = make_stripe_client(settings)
        sync_catalog(stripe_client, session_factory)
        app = create_app(settings, temporal=client)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        serving = asyncio.create_task(server.serve())
        try:
            await eventually(lambda: server.started, timeout=10)
            ls.register_webhook(f"http://127.0.0.1:{port}/webhooks/stripe", WEBHOOK_SECRET)
            async with build_worker(client, settings, session_factory):
                email = f"{new_customer_id('dash')}@example.test"
                cus = stripe_client.v1.customers.create(params={"email": email, "name": "Grace Hopper"})
                add_card(stripe_client, cus.id)
                sub = stripe_client.v1.subscriptions.create(
                    params={"customer": cus.id, "items": [{"plan": "lifecycle-business-month-9900-usd"}]}
                )

                def mirrored():
                    with session_factory() as s:
                        row = s.scalar(select(Subscription).where(Subscription.stripe_subscription_id == sub.id))
                        inv = s.scalar(select(Invoice).where(Invoice.stripe_subscription_id == sub.id))
                        return row is not None and inv is not None and inv.status == "paid" and row

                row = await eventually(mirrored, timeout=20)
                assert (row.customer_id, row.plan_code, row.status) == (cus.id, "business", "active")
                handle = client.get_workflow_handle(customer_workflow_id(cus.id))
                await eventually(lambda: _stage(handle, "active"), timeout=20)
                await eventually(lambda: (customer_row(session_factory, cus.id) or Customer(email="")).email == email)
                state = await handle.query(CustomerWorkflow.state)
                assert state.billing.stripe_subscription_id == sub.id and state.plan == "business"
                assert "trial" not in state.campaigns  # a paying customer gets no trial
            with session_factory() as s:
                types = {e.type: e.status for e in s.scalars(select(StripeEvent))}
            assert types["customer.subscription.created"] == "processed"
            assert types["invoice.payment_succeeded"] == "processed"
        finally:
            server.should_exit = True
            await serving


def test_signature_helper_matches_the_sdk():
    """The test signer uses Stripe's scheme: the SDK's verifier accepts it."""
    import stripe

    body = b'{"id": "evt_1", "object": "event"}'
    stripe.WebhookSignature.verify_header(body.decode(), sign(body), WEBHOOK_SECRET, 300)


async def test_a_card_attached_in_stripe_is_the_one_the_trial_conversion_charges(
    api, session_factory, stripe_acts, stripe_client, client, stripe_settings, ts_env
):
    """payment_method.attached hands the card's id to the entity (as payment_method_id),
    which charges it when the trial converts."""
    cid = new_customer_id()
    async with build_worker(client, stripe_settings, session_factory):
        await signed_up(client, stripe_settings, session_factory, cid)
        cus = await stripe_acts.ensure_customer(EnsureCustomerInput(cid, f"{cid}:customer"))
        pm_id = add_card(stripe_client, cus.stripe_customer_id, default=False)  # e.g. Stripe Elements
        _e, body, headers = signed_event("payment_method.attached", stripe_client.v1.payment_methods.retrieve(pm_id))
        assert (await api.post("/webhooks/stripe", content=body, headers=headers)).status_code == 200
        handle = client.get_workflow_handle(customer_workflow_id(cid))

        async def card_known():
            return (await handle.query(CustomerWorkflow.state)).payment_method_id

        assert await eventually(card_known) == pm_id
        await ts_env.sleep(timedelta(days=14, minutes=1))
        await eventually(lambda: _stage(handle, "active"), timeout=20)
        state = await handle.query(CustomerWorkflow.state)
    sub = stripe_client.v1.subscriptions.retrieve(state.billing.stripe_subscription_id)
    assert sub.status == "active"
    assert stripe_client.v1.customers.retrieve(cus.stripe_customer_id).invoice_settings.default_payment_method == pm_id


async def test_a_trial_converts_on_the_default_the_customer_chose_not_on_a_card_attached_later(
    api, session_factory, stripe_acts, stripe_client, client, stripe_settings, ts_env
):
    """The customer chose a default card; a second card attached later (heard through
    payment_method.attached, the last card the entity knows) stays a spare: the conversion
    charges the chosen default and leaves it the default (Stripe charges the customer's
    ``invoice_settings.default_payment_method``). The later card declines every charge, so
    charging it would leave the customer past due."""
    cid = new_customer_id()
    async with build_worker(client, stripe_settings, session_factory):
        await signed_up(client, stripe_settings, session_factory, cid)
        cus = await stripe_acts.ensure_customer(EnsureCustomerInput(cid, f"{cid}:customer"))
        chosen = add_card(stripe_client, cus.stripe_customer_id, GOOD_CARD)
        later = add_card(stripe_client, cus.stripe_customer_id, FAILING_CARD, default=False)
        _e, body, headers = signed_event("payment_method.attached", stripe_client.v1.payment_methods.retrieve(later))
        assert (await api.post("/webhooks/stripe", content=body, headers=headers)).status_code == 200
        handle = client.get_workflow_handle(customer_workflow_id(cid))

        async def card_known():
            return (await handle.query(CustomerWorkflow.state)).payment_method_id

        assert await eventually(card_known) == later
        await ts_env.sleep(timedelta(days=14, minutes=1))
        await eventually(lambda: _stage(handle, "active"), timeout=20)
        state = await handle.query(CustomerWorkflow.state)
    assert stripe_client.v1.customers.retrieve(cus.stripe_customer_id).invoice_settings.default_payment_method == chosen
    sub = stripe_client.v1.subscriptions.retrieve(state.billing.stripe_subscription_id)
    assert sub.status == "active"
    invoice = stripe_client.v1.invoices.retrieve(sub.latest_invoice)
    assert invoice.status == "paid" and invoice.amount_paid == 1900
    assert stripe_client.v1.payment_intents.retrieve(str(invoice.payment_intent)).payment_method == chosen
    with session_factory() as s:
        assert s.scalar(select(Invoice.status).where(Invoice.stripe_invoice_id == invoice.id)) == "paid"
