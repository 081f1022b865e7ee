"""Dunning through the HTTP API in process, on the time-skipping server with the real worker
and localstripe: Stripe's Smart Retries mode driven by signed webhooks in the current API
shape, manual payment (mark-paid) with its refusals, the customer's ``dunning`` object, the
finance report and the Prometheus counters."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from lifecycle.contracts.billing import StartSubscriptionInput
from lifecycle.settings import Settings
from starter.api.app import create_app
from tests.support.dunning import cases, exists, failing_customer, mails, run_row
from tests.support.helpers import eventually, timeline
from tests.support.stripe import charges, signed_event
from worker import build_worker
from workflows.dunning import DunningWorkflow

API_KEY = "test-key"


async def _settings(http: httpx.AsyncClient) -> Settings:
    """The settings the app in front of ``http`` runs with (the worker's too)."""
    return SETTINGS[id(http)]


SETTINGS: dict[int, Settings] = {}


async def _api(client: Client, settings: Settings, session_factory) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, temporal=client)
    async with (
        build_worker(client, settings, session_factory),
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test",
                          headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30) as http,
    ):
        SETTINGS[id(http)] = settings
        yield http
        SETTINGS.pop(id(http), None)


@pytest.fixture
async def api(client: Client, stripe_settings: Settings, session_factory, synced) -> AsyncIterator[httpx.AsyncClient]:
    async for http in _api(client, stripe_settings, session_factory):
        yield http


@pytest.fixture
async def stripe_mode_api(
    client: Client, stripe_settings: Settings, session_factory, synced
) -> AsyncIterator[httpx.AsyncClient]:
    settings = stripe_settings.model_copy(update={"dunning_retry_mode": "stripe"})
    async for http in _api(client, settings, session_factory):
        yield http


def current_shape(invoice: dict[str, Any], *, attempt: int, next_attempt: int | None) -> dict[str, Any]:
    """A localstripe invoice (2017 shape) as Stripe sends it today: the subscription under
    parent.subscription_details, Smart Retries' attempt_count and next_payment_attempt."""
    out = {k: v for k, v in invoice.items() if k not in ("subscription", "charge", "payment_intent")}
    out.update(
        status="open", amount_paid=0, attempt_count=attempt, next_payment_attempt=next_attempt,
        parent={"type": "subscription_details",
                "subscription_details": {"subscription": invoice["subscription"], "metadata": {}}},
    )
    return out


async def webhook(http: httpx.AsyncClient, type_: str, obj: Any, created: int) -> None:
    _e, body, headers = signed_event(type_, obj, created=created)
    r = await http.post("/webhooks/stripe", content=body, headers=headers)
    assert r.status_code == 200, r.text


def retries(session_factory, cid: str) -> list[Any]:
    return [e for e in timeline(session_factory, cid) if e.kind == "dunning_retry"]


async def test_stripe_mode_follows_smart_retries_and_never_charges(
    ts_env: WorkflowEnvironment, client, session_factory, stripe_acts, stripe_client, stripe_mode_api
):
    f = await failing_customer(client, await _settings(stripe_mode_api), session_factory,
                               stripe_acts, stripe_client, fail=False)
    invoice = stripe_client.v1.invoices.retrieve(f.invoice).to_dict()
    now = int(time.time())
    next_1 = now + 3 * 86400
    await webhook(stripe_mode_api, "invoice.payment_failed", current_shape(invoice, attempt=1, next_attempt=next_1), now)
    await eventually(lambda: exists(f.dunning))
    await eventually(lambda: mails(session_factory, f.cid) == ["dunning_warning"])
    details = await f.dunning.query(DunningWorkflow.details)
    assert details.retry_mode == "stripe" and int(details.next_retry_at.timestamp()) == next_1

    await ts_env.sleep(timedelta(days=8))  # no engine retry on days 1, 3, 5, 7
    await eventually(lambda: "dunning_suspended" in mails(session_factory, f.cid))
    await webhook(stripe_mode_api, "invoice.payment_failed", current_shape(invoice, attempt=2, next_attempt=None), now + 1)
    # no next attempt is not the end (3-D Secure, a decline Stripe will not retry): the
    # dunning ends when Stripe ends the subscription ("if all retries fail": cancel)
    await eventually(lambda: len([e for e in timeline(session_factory, f.cid) if e.kind == "invoice_failed"]) == 2)
    assert (await f.dunning.describe()).status.name == "RUNNING"
    sub_id = f.sub.stripe_subscription_id
    stripe_client.v1.subscriptions.cancel(sub_id)
    await webhook(stripe_mode_api, "customer.subscription.deleted", stripe_client.v1.subscriptions.retrieve(sub_id),
                  now + 2)
    assert await f.dunning.result() == "canceled"
    assert retries(session_factory, f.cid) == []
    assert charges(stripe_client, f.stripe_customer) == 1  # the first charge only
    ended = next(e for e in timeline(session_factory, f.cid) if e.kind == "dunning_ended")
    assert ended.detail["days"] < 9 and ended.detail["by"] == "stripe"


async def test_stripe_mode_recovered_by_stripe(
    ts_env: WorkflowEnvironment, client, session_factory, stripe_acts, stripe_client, stripe_mode_api
):
    f = await failing_customer(client, await _settings(stripe_mode_api), session_factory, stripe_acts,
                               stripe_client, fail=False)
    invoice = stripe_client.v1.invoices.retrieve(f.invoice).to_dict()
    now = int(time.time())
    await webhook(stripe_mode_api, "invoice.payment_failed",
                  current_shape(invoice, attempt=1, next_attempt=now + 86400), now)
    await eventually(lambda: exists(f.dunning))
    paid = {**current_shape(invoice, attempt=2, next_attempt=None), "status": "paid", "amount_paid": invoice["amount_due"]}
    await webhook(stripe_mode_api, "invoice.paid", paid, now + 2)
    assert await f.dunning.result() == "recovered"
    assert cases(session_factory, f.cid)[f.invoice].how == "stripe"
    await eventually(lambda: f.stage_is("active"))


async def test_mark_paid_ends_dunning_and_refuses_what_cannot_be_paid(
    ts_env: WorkflowEnvironment, client, session_factory, stripe_acts, stripe_client, api
):
    f = await failing_customer(client, await _settings(api), session_factory, stripe_acts, stripe_client)
    await eventually(lambda: exists(f.dunning))
    await eventually(lambda: run_row(session_factory, f.dunning_id()) is not None)

    await eventually(lambda: mails(session_factory, f.cid) == ["dunning_warning"])
    view = (await api.get(f"/v1/customers/{f.cid}")).json()
    d = view["dunning"]
    assert d["state"] == "warning" and d["suspended"] is False and d["retry_mode"] == "engine"
    assert d["open_invoices"] == [{"invoice_id": f.invoice, "amount_cents": 9900, "currency": "usd",
                                   "decline_code": "card_declined", "hard_decline": False}]
    assert d["next_retry_at"] is not None and d["next_step"] == "retry_1"

    r = await api.post("/v1/invoices/in_doesnotexist/mark-paid", json={"reason": "bank transfer"})
    assert r.status_code == 404 and "unknown invoice" in r.json()["detail"]
    r = await api.post(f"/v1/invoices/{f.invoice}/mark-paid", json={"reason": ""})
    assert r.status_code == 422

    r = await api.post(f"/v1/invoices/{f.invoice}/mark-paid", json={"reason": "bank transfer 2026-12-01"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["actor"] == "api key key-1" and API_KEY not in body["actor"]  # the key's name, never the key
    assert body["stripe_updated"] is False  # localstripe has no paid_out_of_band
    assert await f.dunning.result() == "recovered"
    assert cases(session_factory, f.cid)[f.invoice].how == "manual"
    closed = next(e for e in timeline(session_factory, f.cid) if e.kind == "invoice_closed")
    assert closed.detail["actor"] == body["actor"] and closed.detail["reason"] == "bank transfer 2026-12-01"

    again = await api.post(f"/v1/invoices/{f.invoice}/mark-paid", json={"reason": "twice"})
    assert again.status_code == 409 and "already paid" in again.json()["detail"]

    # a void invoice: refused with the reason
    other = await stripe_acts.start_subscription(StartSubscriptionInput(f.cid, "starter", f"{f.cid}:second"))
    stripe_client.v1.invoices.void_invoice(other.latest_invoice_id)
    void = await api.post(f"/v1/invoices/{other.latest_invoice_id}/mark-paid", json={"reason": "x"})
    assert void.status_code == 409 and "void" in void.json()["detail"]

    view = (await api.get(f"/v1/customers/{f.cid}")).json()
    assert view["dunning"]["state"] == "recovered" and view["dunning"]["open_invoices"] == []
    rep = (await api.get("/v1/dunning/report")).json()
    assert rep["recovered"] == {"count": 1, "amounts": {"usd": 9900}}
    assert rep["recovered_by"] == {"manual": {"count": 1, "amounts": {"usd": 9900}}}
    assert rep["by_decline_code"]["card_declined"]["recovered"]["count"] == 1
    assert rep["recovery_rate"] == 1.0
    metrics = (await api.get("/metrics")).text
    assert "lifecycle_dunning_entered_total 1.0" in metrics
    assert "lifecycle_dunning_recovered_total 1.0" in metrics


async def test_mark_paid_needs_ops_is_audited_intent_then_outcome_and_acts_once_per_idempotency_key(
    ts_env: WorkflowEnvironment, client, session_factory, stripe_acts, stripe_client, stripe_settings, synced
):
    import asyncio

    from sqlalchemy import select

    from lifecycle.models import AuditEntry, Invoice, ManualPayment

    settings = stripe_settings.model_copy(update={"api_keys": [API_KEY, "finance:k-billing:billing,read"]})
    async for api in _api(client, settings, session_factory):
        f = await failing_customer(client, settings, session_factory, stripe_acts, stripe_client, fail=False)
        url = f"/v1/invoices/{f.invoice}/mark-paid"
        billing_only = await api.post(url, json={"reason": "x"}, headers={"Authorization": "Bearer k-billing"})
        assert billing_only.status_code == 403 and "'ops'" in billing_only.json()["detail"]

        key = {"Idempotency-Key": "transfer-2026-12-07"}
        first, second = await asyncio.gather(
            api.post(url, json={"reason": "bank transfer"}, headers=key),
            api.post(url, json={"reason": "bank transfer"}, headers=key),
        )
        answers = sorted([first, second], key=lambda r: r.status_code)
        assert answers[0].status_code == 200, answers[0].text
        # the duplicate got the stored answer, or a 409 while the first was acting
        assert answers[1].status_code in (200, 409), answers[1].text
        retried = await api.post(url, json={"reason": "bank transfer"}, headers=key)
        assert retried.status_code == 200 and retried.json() == answers[0].json()

        with session_factory() as s:
            assert len(s.scalars(select(ManualPayment).where(ManualPayment.invoice_id == f.invoice)).all()) == 1
            mirrored = s.scalar(select(Invoice).where(Invoice.stripe_invoice_id == f.invoice))
            assert mirrored is not None and mirrored.status == "paid"
            rows = s.scalars(select(AuditEntry).where(AuditEntry.action == "mark-paid")
                             .order_by(AuditEntry.id)).all()
        assert [(r.customer_id, r.detail["phase"]) for r in rows] == [(f.cid, "intent"), (f.cid, "outcome")]
        assert rows[0].detail["invoice"] == f.invoice and rows[1].detail["outcome"] == "paid"
        assert rows[0].actor == rows[1].actor == "api key key-1"
