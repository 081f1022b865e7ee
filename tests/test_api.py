"""The HTTP API on the time-skipping server with the real worker: auth, validation,
idempotent signup, 404s (Temporal down: tests/test_api_outbox.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from lifecycle.models import Customer
from lifecycle.settings import Settings
from starter.api.app import create_app
from tests.support.helpers import emails, eventually
from worker import build_worker

AUTH = {"Authorization": "Bearer test-key"}


async def _client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=AUTH) as http:
            yield http


@pytest.fixture
async def api(ts_env, settings: Settings, session_factory) -> AsyncIterator[httpx.AsyncClient]:
    async with build_worker(ts_env.client, settings, session_factory):
        async for http in _client_for(create_app(settings, temporal=ts_env.client)):
            yield http


SIGNUP = {
    "customer_id": "acme-1",
    "email": "ada@acme.test",
    "name": "Ada Lovelace",
    "company": "Acme",
    "timezone": "Europe/Berlin",
}


async def test_every_v1_route_needs_an_api_key(api: httpx.AsyncClient) -> None:
    for method, path in [
        ("POST", "/v1/events/signup"),
        ("POST", "/v1/events/activation"),
        ("POST", "/v1/customers/x/payment-method"),
        ("GET", "/v1/customers/x"),
        ("PUT", "/v1/customers/x/email-preferences"),
    ]:
        r = await api.request(method, path, headers={"Authorization": ""}, json={})
        assert r.status_code == 401, (method, path)
        r = await api.request(method, path, headers={"Authorization": "Bearer wrong"}, json={})
        assert r.status_code == 401, (method, path)
    assert (await api.get("/healthz")).status_code == 200


async def test_signup_starts_the_lifecycle_and_a_repeat_returns_the_same(
    api: httpx.AsyncClient, ts_env, session_factory
) -> None:
    r = await api.post("/v1/events/signup", json=SIGNUP)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["stage"] == "trialing" and body["created"] is True
    assert body["workflow_url"].endswith("/workflows/customer-acme-1")

    again = await api.post("/v1/events/signup", json=SIGNUP)
    assert again.status_code == 200
    assert again.json()["created"] is False

    handle = ts_env.client.get_workflow_handle("customer-acme-1")
    first_run = (await handle.describe()).raw_description.workflow_execution_info.first_run_id
    assert (await handle.describe()).run_id == first_run
    await eventually(lambda: [m for m in emails(session_factory, "acme-1") if m.template == "welcome"])
    await ts_env.sleep(timedelta(minutes=5))
    assert len([m for m in emails(session_factory, "acme-1") if m.template == "welcome"]) == 1

    view = (await api.get("/v1/customers/acme-1")).json()
    assert view["stage"] == "trialing" and view["live"] is True
    assert view["running_campaigns"] == ["onboarding", "trial"]
    steps = {s["campaign"]: s["step"] for s in view["next_steps"]}
    assert steps == {"trial": "reminder_3_days", "onboarding": "tip_first_project"}
    with session_factory() as s:
        assert s.get(Customer, "acme-1").timezone == "Europe/Berlin"


async def test_activation_and_payment_method_reach_the_workflow(api: httpx.AsyncClient) -> None:
    assert (await api.post("/v1/events/signup", json=SIGNUP)).status_code == 201
    r = await api.post("/v1/events/activation", json={"customer_id": "acme-1", "fact": "created_first_project"})
    assert r.status_code == 202
    r = await api.post("/v1/customers/acme-1/payment-method", json={})
    assert r.status_code == 202

    async def heard() -> bool:
        view = (await api.get("/v1/customers/acme-1")).json()
        return view["payment_method_on_file"] and view["activation_facts"] == ["created_first_project"]

    await eventually(heard)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"plan": "platinum"}, "plan"),
        ({"customer_id": "has spaces"}, "customer_id"),
        ({"customer_id": None}, "customer_id"),
    ],
)
async def test_malformed_signup_gets_422_naming_the_field(api: httpx.AsyncClient, patch, field) -> None:
    r = await api.post("/v1/events/signup", json={**SIGNUP, **patch})
    assert r.status_code == 422
    assert any(err["loc"][-1] == field for err in r.json()["detail"]), r.json()


async def test_broken_json_gets_422(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/v1/events/signup", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert r.status_code == 422


async def test_unknown_customer_gets_404(api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/customers/nobody")).status_code == 404
    r = await api.post("/v1/events/activation", json={"customer_id": "nobody", "fact": "used_api"})
    assert r.status_code == 404 and "nobody" in r.json()["detail"]
    assert (await api.post("/v1/customers/nobody/payment-method", json={})).status_code == 404


async def test_email_preferences_opt_out_and_back_in(api: httpx.AsyncClient, ts_env, session_factory) -> None:
    from lifecycle.email.suppressions import BOUNCE, add_suppression, suppression_reasons
    from workflows.customer import CustomerWorkflow

    assert (await api.post("/v1/events/signup", json=SIGNUP)).status_code == 201
    handle = ts_env.client.get_workflow_handle("customer-acme-1")

    async def opted_out(expected: bool) -> bool:
        return (await handle.query(CustomerWorkflow.state)).marketing_opt_out is expected

    r = await api.put("/v1/customers/acme-1/email-preferences", json={"marketing": False})
    assert r.status_code == 200 and r.json() == {"customer_id": "acme-1", "marketing": False, "suppressed": []}
    with session_factory() as s:
        assert suppression_reasons(s, "acme-1", "ada@acme.test") == {"unsubscribe"}
    await eventually(lambda: opted_out(True))

    r = await api.put("/v1/customers/acme-1/email-preferences", json={"marketing": True})
    assert r.json()["marketing"] is True
    with session_factory() as s:
        assert suppression_reasons(s, "acme-1", "ada@acme.test") == set()
    await eventually(lambda: opted_out(False))

    # a hard bounce is never lifted by the customer's preference
    with session_factory() as s:
        add_suppression(s, email="ada@acme.test", reason=BOUNCE, customer_id="acme-1", source="sendgrid")
        s.commit()
    r = await api.put("/v1/customers/acme-1/email-preferences", json={"marketing": True})
    assert r.json() == {"customer_id": "acme-1", "marketing": False, "suppressed": ["bounce"]}
    assert (await api.put("/v1/customers/nobody/email-preferences", json={"marketing": True})).status_code == 404
    assert (await api.put("/v1/customers/acme-1/email-preferences", json={})).status_code == 422
