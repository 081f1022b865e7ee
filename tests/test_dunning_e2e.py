"""End to end against localstripe with the real activities, the API and the outbox: a
customer signs up and subscribes through the HTTP API on the failing card
4000000000000341, Stripe's invoice.payment_failed arrives as a signed webhook (localstripe
never sends it: built around the real invoice), the customer goes into dunning with one
warning email in the outbox, and the engine's retry on day 1 is declined by localstripe.
(The card-update page that would end it is tested with the pages.)"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from lifecycle.contracts.ids import campaign_workflow_id
from starter.api.app import create_app
from tests.support.dunning import exists, mail_texts, mails, run_row
from tests.support.helpers import eventually, timeline
from tests.support.stripe import FAILING_CARD, new_customer_id, signed_event
from worker import build_worker

AUTH = {"Authorization": "Bearer test-key"}


@pytest.fixture
async def api(stripe_settings, client, session_factory, synced) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(stripe_settings, temporal=client)
    async with build_worker(client, stripe_settings, session_factory), app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test", headers=AUTH, timeout=60
        ) as http:
            yield http


async def test_a_failing_card_goes_into_dunning_and_the_engines_retry_is_declined(
    ts_env: WorkflowEnvironment, api, client, session_factory, stripe_client
):
    cid = new_customer_id("e2e")
    r = await api.post("/v1/events/signup", json={"customer_id": cid, "email": f"{cid}@example.test",
                                                  "name": "Ada Lovelace"})
    assert r.status_code in (200, 201, 202), r.text
    pm = stripe_client.v1.payment_methods.create(params={
        "type": "card", "card": {"number": FAILING_CARD, "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
    r = await api.post(f"/v1/customers/{cid}/subscription",
                       json={"plan": "professional", "payment_method_id": pm.id, "request_id": "sub"})
    assert r.status_code in (201, 402), r.text
    sub_id = r.json().get("stripe_subscription_id") or r.json()["detail"]["stripe_subscription_id"]
    sub = stripe_client.v1.subscriptions.retrieve(sub_id)
    invoice = stripe_client.v1.invoices.retrieve(sub.latest_invoice).to_dict()
    assert invoice["status"] == "open"  # the first charge was declined

    _e, body, headers = signed_event("invoice.payment_failed", {**invoice, "attempt_count": 1},
                                     created=int(time.time()))
    assert (await api.post("/webhooks/stripe", content=body, headers=headers)).status_code == 200

    dunning = client.get_workflow_handle(campaign_workflow_id(cid, "dunning", invoice["id"]))
    await eventually(lambda: exists(dunning))
    await eventually(lambda: "dunning_warning" in mails(session_factory, cid))
    assert mails(session_factory, cid).count("dunning_warning") == 1
    assert "/billing/card?token=" in mail_texts(session_factory, cid, "dunning_warning")[0]
    view = (await api.get(f"/v1/customers/{cid}")).json()
    assert view["dunning"]["state"] == "warning"
    assert [i["invoice_id"] for i in view["dunning"]["open_invoices"]] == [invoice["id"]]

    await ts_env.sleep(timedelta(days=1, hours=1))
    retry = await eventually(lambda: [e for e in timeline(session_factory, cid) if e.kind == "dunning_retry"])
    assert [(e.detail["retry"], e.detail["outcome"]) for e in retry] == [("retry_1", "declined")]
    assert stripe_client.v1.invoices.retrieve(invoice["id"]).status == "open"
    assert run_row(session_factory, dunning.id).state == "warning"
    assert mails(session_factory, cid).count("dunning_warning") == 1  # the retry mailed nothing twice
