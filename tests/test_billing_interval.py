"""Annual to monthly billing on the same tier: a change of interval at the end of the paid
year, not an upgrade invoiced now. Time-skipping Temporal, the real Stripe activities
against localstripe, SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from lifecycle.contracts.ids import campaign_workflow_id, customer_workflow_id
from starter.api.app import create_app
from tests.support.helpers import eventually
from tests.support.stripe import new_customer_id, signed_up
from worker import build_worker
from workflows.customer import CustomerWorkflow

AUTH = {"Authorization": "Bearer test-key"}


@pytest.fixture
async def api(stripe_settings, client, session_factory, synced) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(stripe_settings, temporal=client)
    async with build_worker(client, stripe_settings, session_factory), app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test", headers=AUTH, timeout=60
        ) as http:
            yield http


async def test_annual_to_monthly_on_the_same_tier_waits_for_the_paid_year_to_end(
    api, client, stripe_settings, session_factory, stripe_client, ts_env
) -> None:
    cid = new_customer_id("interval")
    await signed_up(client, stripe_settings, session_factory, cid)
    base = f"/v1/customers/{cid}/subscription"
    created = await api.post(base, json={"plan": "professional", "interval": "year", "payment_method_id": "pm_card_visa"})
    assert created.status_code == 201, created.text
    sub_id = created.json()["stripe_subscription_id"]

    monthly = await api.patch(base, json={"interval": "month", "request_id": "to-monthly"})

    assert monthly.status_code == 200, monthly.text
    body = monthly.json()
    assert (body["outcome"], body["interval"], body["pending_plan"], body["pending_interval"]) == (
        "change_scheduled", "year", "professional", "month")
    # nothing invoiced now: the year paid is the only invoice, the subscription still yearly
    invoices = stripe_client.v1.invoices.list(params={"subscription": sub_id}).data
    assert [(i.status, i.amount_paid) for i in invoices] == [("paid", 49000)]
    item = stripe_client.v1.subscriptions.retrieve(sub_id)["items"]["data"][0]
    assert item["plan"]["id"] == "lifecycle-professional-year-49000-usd"

    await ts_env.sleep(timedelta(days=364))
    item = stripe_client.v1.subscriptions.retrieve(sub_id)["items"]["data"][0]
    assert item["plan"]["interval"] == "year"  # still within the paid year
    await ts_env.sleep(timedelta(days=2))  # the year ends: monthly billing from then

    child = client.get_workflow_handle(campaign_workflow_id(cid, "plan-change", "to-monthly"))
    assert (await child.result())["interval"] == "month"
    item = stripe_client.v1.subscriptions.retrieve(sub_id)["items"]["data"][0]
    assert item["plan"]["id"] == "lifecycle-professional-month-4900-usd"

    async def billed_monthly() -> bool:
        state = await client.get_workflow_handle(customer_workflow_id(cid)).query(CustomerWorkflow.state)
        return (state.billing.interval, state.billing.pending_interval) == ("month", None)

    await eventually(billed_monthly, timeout=20)
