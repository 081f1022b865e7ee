"""Stripe's errors answered by cause through the subscription API (against localstripe).

A payment method that is none, or a card declined when attached, is the caller's input
(422 naming the field, 402 with the decline code); Stripe unreachable is an outage
(503 with Retry-After). Nothing is subscribed in any of these cases.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from lifecycle.contracts.ids import customer_workflow_id
from starter.api.app import create_app
from starter.dev.localstripe import free_port
from tests.support.helpers import customer_row
from tests.support.stripe import new_customer_id, signed_up
from worker import build_worker
from workflows.customer import CustomerWorkflow

AUTH = {"Authorization": "Bearer test-key"}


async def _api(settings, client, session_factory) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, temporal=client)
    async with build_worker(client, settings, session_factory), app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test", headers=AUTH, timeout=120
        ) as http:
            yield http


@pytest.fixture
async def running(stripe_settings, client, session_factory, synced) -> AsyncIterator[httpx.AsyncClient]:
    async for http in _api(stripe_settings, client, session_factory):
        yield http


@pytest.fixture
async def stripe_down(stripe_settings, client, session_factory, synced) -> AsyncIterator[httpx.AsyncClient]:
    """The worker's Stripe is a port nothing listens on (localstripe stopped)."""
    dead = stripe_settings.model_copy(update={"stripe_api_base": f"http://127.0.0.1:{free_port()}"})
    async for http in _api(dead, client, session_factory):
        yield http


async def _nothing_subscribed(client, session_factory, cid) -> None:
    state = await client.get_workflow_handle(customer_workflow_id(cid)).query(CustomerWorkflow.state)
    assert state.stage == "trialing" and state.billing.stripe_subscription_id is None
    assert customer_row(session_factory, cid).stage == "trialing"


async def test_a_payment_method_that_is_none_is_the_callers_mistake_422_naming_the_field(
    running, client, stripe_settings, session_factory
):
    cid = new_customer_id()
    await signed_up(client, stripe_settings, session_factory, cid)

    r = await running.post(
        f"/v1/customers/{cid}/subscription", json={"plan": "business", "payment_method_id": "pm_doesnotexist"}
    )

    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail["field"] == "payment_method_id"
    assert detail["reason"]  # Stripe's own message (localstripe: "Not Found")
    await _nothing_subscribed(client, session_factory, cid)


async def test_a_card_declined_when_attached_is_402_with_the_decline_code(
    running, client, stripe_settings, session_factory, stripe_client
):
    cid = new_customer_id()
    await signed_up(client, stripe_settings, session_factory, cid)
    declined = stripe_client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": "4000000000000002", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    )

    r = await running.post(
        f"/v1/customers/{cid}/subscription", json={"plan": "business", "payment_method_id": declined.id}
    )

    assert r.status_code == 402, r.text
    detail = r.json()["detail"]
    assert detail["decline_code"] == "card_declined"
    assert "declined" in detail["reason"].lower()
    assert detail["field"] == "payment_method_id"
    await _nothing_subscribed(client, session_factory, cid)


async def test_stripe_unreachable_is_503_with_retry_after(stripe_down, client, stripe_settings, session_factory, ts_env):
    cid = new_customer_id()
    await signed_up(client, stripe_settings, session_factory, cid)

    request = asyncio.create_task(
        stripe_down.post(
            f"/v1/customers/{cid}/subscription", json={"plan": "business", "payment_method_id": "pm_card_visa"}
        )
    )
    while not request.done():  # let the activity's retries (about a minute) pass quickly
        await ts_env.sleep(timedelta(seconds=30))
        await asyncio.sleep(0.2)
    r = await request

    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) > 0
    assert "Stripe unavailable" in r.json()["detail"]["reason"]
    await _nothing_subscribed(client, session_factory, cid)
