"""An acknowledged Stripe event is processed, exactly once, whatever dies in between.

- The API answered 200 and was killed before processing (the event stays `received`):
  the sweeper processes it, and so does a redelivery; neither processes it twice.
- Temporal is down at hand-over: the mirror is updated, the hand-over waits in the
  signal outbox, and reaches the workflow when Temporal is back, with no redelivery.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator

import httpx
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from lifecycle import temporal as temporal_bins
from lifecycle.billing.webhooks import recent_events, record_event
from lifecycle.contracts.ids import customer_workflow_id
from lifecycle.db import session_scope
from lifecycle.models import SignalOutbox, StripeEvent, SubscriptionChange
from lifecycle.temporal import connect, ensure_search_attributes
from starter.api.app import create_app
from tests.conftest import free_port
from tests.support.helpers import eventually
from tests.support.stripe import signed_event, subscribed


async def _http(app) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
            yield http


async def _past_due_event(session_factory, stripe_acts, stripe_client):
    cid, res = await subscribed(session_factory, stripe_acts, stripe_client)
    sub = stripe_client.v1.subscriptions.retrieve(res.stripe_subscription_id).to_dict()
    sub["status"] = "past_due"
    event, body, headers = signed_event("customer.subscription.updated", sub, created=int(time.time()) + 5)
    return cid, event, body, headers


def _acknowledged_then_killed(session_factory, event) -> None:
    """What a killed API leaves behind: the event recorded, its 200 sent, nothing applied."""
    with session_scope(session_factory) as s:
        assert record_event(s, event)


def _row(session_factory, event_id: str) -> StripeEvent:
    with session_factory() as s:
        return s.get(StripeEvent, event_id)


def _history(session_factory, cid: str) -> list[str]:
    with session_factory() as s:
        return list(
            s.scalars(
                select(SubscriptionChange.status)
                .where(SubscriptionChange.customer_id == cid)
                .order_by(SubscriptionChange.id)
            )
        )


async def test_the_sweeper_processes_an_event_the_api_acknowledged_and_never_applied(
    stripe_settings, session_factory, stripe_acts, stripe_client, client
) -> None:
    cid, event, _body, _headers = await _past_due_event(session_factory, stripe_acts, stripe_client)
    _acknowledged_then_killed(session_factory, event)
    with session_factory() as s:  # `lifecycle stripe events --stuck` lists it
        assert [r.id for r in recent_events(s, stuck_after=dt.timedelta(0))] == [event["id"]]

    settings = stripe_settings.model_copy(
        update={"stripe_sweep_interval_seconds": 0.2, "stripe_stuck_after_seconds": 0.2}
    )
    async for http in _http(create_app(settings, temporal=client)):
        await eventually(lambda: _row(session_factory, event["id"]).status == "processed")
        assert 'lifecycle_stripe_webhook_stuck_events_total{type="customer.subscription.updated"}' in (
            await http.get("/metrics")
        ).text
    assert _row(session_factory, event["id"]).attempts == 1
    assert _history(session_factory, cid) == ["active", "past_due"]
    with session_factory() as s:
        assert recent_events(s, stuck_after=dt.timedelta(0)) == []


async def test_a_redelivery_of_an_unprocessed_event_processes_it_once(
    stripe_settings, session_factory, stripe_acts, stripe_client, client
) -> None:
    cid, event, body, headers = await _past_due_event(session_factory, stripe_acts, stripe_client)
    _acknowledged_then_killed(session_factory, event)
    settings = stripe_settings.model_copy(update={"stripe_sweep_interval_seconds": 0})
    async for http in _http(create_app(settings, temporal=client)):
        r = await http.post("/webhooks/stripe", content=body, headers=headers)
        assert r.status_code == 200 and r.json()["duplicate"] is True
        await eventually(lambda: _row(session_factory, event["id"]).status == "processed")
        again = await http.post("/webhooks/stripe", content=body, headers=headers)
        assert again.json()["duplicate"] is True
    assert _row(session_factory, event["id"]).attempts == 1
    assert _history(session_factory, cid) == ["active", "past_due"]


async def test_temporal_down_at_hand_over_then_back_delivers_without_a_redelivery(
    stripe_settings, session_factory, stripe_acts, stripe_client
) -> None:
    cid, event, body, headers = await _past_due_event(session_factory, stripe_acts, stripe_client)
    port = free_port()
    settings = stripe_settings.model_copy(
        update={"temporal_address": f"127.0.0.1:{port}", "signal_relay_interval_seconds": 0.2}
    )
    app = create_app(settings, temporal=await connect(settings, lazy=True))
    async for http in _http(app):
        assert (await http.post("/webhooks/stripe", content=body, headers=headers)).status_code == 200
        await eventually(lambda: _row(session_factory, event["id"]).status == "processed")
        assert _history(session_factory, cid) == ["active", "past_due"]  # the mirror moved
        with session_factory() as s:
            queued = s.scalar(select(SignalOutbox).where(SignalOutbox.event_id == f"stripe:{event['id']}"))
            assert queued is not None and queued.delivered_at is None and queued.last_error

        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(temporal_bins.test_server_binary()), port=port
        )
        try:
            await ensure_search_attributes(env.client)

            def delivered() -> bool:
                with session_factory() as s:
                    row = s.scalar(select(SignalOutbox).where(SignalOutbox.event_id == f"stripe:{event['id']}"))
                    return row.delivered_at is not None

            await eventually(delivered, timeout=30)
            desc = await env.client.get_workflow_handle(customer_workflow_id(cid)).describe()
            assert desc.id == customer_workflow_id(cid)
        finally:
            await env.shutdown()
    assert _row(session_factory, event["id"]).attempts == 1
