"""The ops routes on the time-skipping server with the real worker: actions with a reason
and the key's name as the actor, the audit trail, scopes (403), bad input, and the
customer view's why-waiting and Stripe links."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from lifecycle.models import AuditEntry, Customer
from lifecycle.settings import Settings
from starter.api.app import create_app
from tests.support.helpers import eventually
from tests.test_api import SIGNUP
from worker import build_worker

KEYS = [
    "support:k-support:ops,read",  # named, two scopes
    "product:k-product:events,usage",
    "finance:k-finance:billing",
    "legacy-bare-key",  # the old form: every scope
]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def api(ts_env, settings: Settings, session_factory) -> AsyncIterator[httpx.AsyncClient]:
    configured = settings.model_copy(update={
        "api_keys": KEYS, "stripe_api_key": settings.stripe_api_key.__class__("sk_test_123"),
        # a test key against nothing that listens: still development (real Stripe would make
        # these short keys refused at start, lifecycle.settings.production_reasons)
        "stripe_api_base": "http://127.0.0.1:9",
    })
    app = create_app(configured, temporal=ts_env.client)
    async with build_worker(ts_env.client, configured, session_factory), app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            yield http


async def _signed_up(api: httpx.AsyncClient, session_factory) -> str:
    r = await api.post("/v1/events/signup", json=SIGNUP, headers=auth("k-product"))
    assert r.status_code == 201, r.text
    return SIGNUP["customer_id"]


async def _onboarding_step(api: httpx.AsyncClient, cid: str) -> str | None:
    view = (await api.get(f"/v1/customers/{cid}", headers=auth("k-support"))).json()
    found = [c for c in (view.get("why_waiting") or {}).get("campaigns", []) if c["campaign"] == "onboarding"]
    return found[0]["step"] if found and found[0]["waiting"]["kind"] == "timer" else None


async def test_an_action_is_taken_in_the_keys_name_and_audited(api, session_factory) -> None:
    cid = await _signed_up(api, session_factory)
    await eventually(lambda: _onboarding_step(api, cid))
    r = await api.post(f"/v1/customers/{cid}/actions/pause", headers=auth("k-support"),
                       json={"reason": "ticket 4711: on holiday"})
    assert r.status_code == 200, r.text
    assert r.json()["actor"] == "support" and r.json()["paused"] is True
    with session_factory() as s:
        [row] = s.scalars(select(AuditEntry).where(AuditEntry.customer_id == cid)).all()
    assert (row.action, row.actor, row.reason) == ("pause", "support", "ticket 4711: on holiday")

    listed = (await api.get("/v1/audit", params={"actor": "support"}, headers=auth("k-support"))).json()
    assert [(e["customer_id"], e["action"]) for e in listed] == [(cid, "pause")]
    view = (await api.get(f"/v1/customers/{cid}", headers=auth("k-support"))).json()
    assert view["why_waiting"]["paused"] is True


async def test_each_route_needs_its_scope(api, session_factory) -> None:
    cid = await _signed_up(api, session_factory)
    body = {"reason": "why not"}
    forbidden = [
        ("k-product", "POST", f"/v1/customers/{cid}/actions/pause", body),  # no ops
        ("k-product", "GET", f"/v1/customers/{cid}", None),  # no read
        ("k-product", "GET", "/v1/audit", None),
        ("k-support", "POST", "/v1/events/signup", SIGNUP),  # no events
        ("k-support", "POST", "/v1/usage", {"events": []}),  # no usage
        ("k-support", "GET", f"/v1/customers/{cid}/entitlements", None),
        ("k-support", "POST", f"/v1/customers/{cid}/subscription", {"plan": "starter"}),  # no billing
        ("k-finance", "POST", f"/v1/customers/{cid}/actions/pause", body),
    ]
    for key, method, path, payload in forbidden:
        r = await api.request(method, path, headers=auth(key), json=payload)
        assert r.status_code == 403, (key, method, path, r.status_code, r.text)
        assert "scope" in r.json()["detail"]
    with session_factory() as s:
        assert s.scalars(select(AuditEntry)).all() == []  # nothing was done
    # the bare key may do everything
    assert (await api.get(f"/v1/customers/{cid}", headers=auth("legacy-bare-key"))).status_code == 200
    r = await api.post(f"/v1/customers/{cid}/actions/pause", headers=auth("legacy-bare-key"), json=body)
    assert r.status_code == 200 and r.json()["actor"] == "key-1"


async def test_bad_input_gets_a_clear_answer(api, session_factory) -> None:
    cid = await _signed_up(api, session_factory)
    await eventually(lambda: _onboarding_step(api, cid))
    ops = auth("k-support")

    async def post(customer: str, action: str, body: dict) -> tuple[int, str]:
        r = await api.post(f"/v1/customers/{customer}/actions/{action}", headers=ops, json=body)
        return r.status_code, r.text

    assert (await post("nobody", "pause", {"reason": "x"}))[0] == 404
    assert (await post(cid, "explode", {"reason": "x"}))[0] == 404
    status, text = await post(cid, "cancel-campaign", {"reason": "x", "campaign": "winback"})
    assert status == 409 and "running: onboarding, trial" in text
    status, text = await post(cid, "skip-step", {"reason": "x", "campaign": "onboarding", "step": "tip_api"})
    assert status == 409 and "tip_first_project" in text
    status, text = await post(cid, "extend-grace", {"reason": "x", "days": 3})
    assert status == 409 and "no dunning is running" in text
    assert (await post(cid, "retry-now", {"reason": "x"}))[0] == 409
    assert (await post(cid, "extend-grace", {"reason": "x", "days": -3}))[0] == 422
    assert (await post(cid, "pause", {}))[0] == 422  # no reason
    assert (await post(cid, "pause", {"reason": ""}))[0] == 422
    with session_factory() as s:
        assert s.scalars(select(AuditEntry)).all() == []


async def test_the_customer_view_names_stripe_and_what_each_campaign_waits_for(api, session_factory) -> None:
    cid = await _signed_up(api, session_factory)
    with session_factory() as s:
        s.get(Customer, cid).stripe_customer_id = "cus_Test123"
        s.commit()
    step = await eventually(lambda: _onboarding_step(api, cid))
    assert step == "tip_first_project"
    view = (await api.get(f"/v1/customers/{cid}", headers=auth("k-support"))).json()
    assert view["stripe"]["customer_id"] == "cus_Test123"
    assert view["stripe"]["customer_url"] == "https://dashboard.stripe.com/test/customers/cus_Test123"
    onboarding = next(c for c in view["why_waiting"]["campaigns"] if c["campaign"] == "onboarding")
    assert onboarding["waiting"]["until"] and onboarding["next_step"] == "tip_invite_team"
    assert onboarding["workflow_id"] == f"customer-{cid}/onboarding"


async def test_an_action_retried_with_the_same_idempotency_key_acts_once(api, session_factory) -> None:
    cid = await _signed_up(api, session_factory)
    await eventually(lambda: _onboarding_step(api, cid))
    headers = {**auth("k-support"), "Idempotency-Key": "pause-1"}
    body = {"reason": "customer asked for a break"}
    first = await api.post(f"/v1/customers/{cid}/actions/pause", headers=headers, json=body)
    assert first.status_code == 200, first.text
    again = await api.post(f"/v1/customers/{cid}/actions/pause", headers=headers, json=body)
    assert again.status_code == 200 and again.json() == first.json()
    with session_factory() as s:
        assert [r.action for r in s.scalars(select(AuditEntry).where(AuditEntry.customer_id == cid))] == ["pause"]
