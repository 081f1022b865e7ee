"""Usage through the real app (create_app: auth, lifespan, the usage router and its signal
delivery) with the real worker on the time-skipping server: a signed-up (trialing)
customer crosses 80 % over HTTP and gets the trial nudge, once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from lifecycle.settings import Settings
from starter.api.app import create_app
from tests.support.helpers import emails, eventually
from worker import build_worker

AUTH = {"Authorization": "Bearer test-key"}


@pytest.fixture
async def api(ts_env, settings: Settings, session_factory) -> AsyncIterator[httpx.AsyncClient]:  # noqa: ANN001
    app = create_app(settings, temporal=ts_env.client)
    async with build_worker(ts_env.client, settings, session_factory), app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api",
                                     headers=AUTH) as http:
            yield http


async def test_usage_routes_need_an_api_key(api: httpx.AsyncClient) -> None:
    for method, path in [("POST", "/v1/usage"), ("POST", "/v1/usage/check"),
                         ("GET", "/v1/customers/x/entitlements")]:
        r = await api.request(method, path, headers={"Authorization": "Bearer wrong"}, json={})
        assert r.status_code == 401, (method, path)


async def test_signup_then_usage_over_http_sends_the_trial_nudge_once(
    api: httpx.AsyncClient, session_factory  # noqa: ANN001
) -> None:
    r = await api.post("/v1/events/signup", json={"customer_id": "acme-9", "email": "ada@acme.test",
                                                   "name": "Ada Lovelace"})
    assert r.status_code == 201, r.text
    ent = (await api.get("/v1/customers/acme-9/entitlements")).json()
    assert ent["stage"] == "trialing" and ent["metrics"]["ai_requests"]["limit"] == 1000
    batch = [{"customer_id": "acme-9", "metric": "ai_requests", "quantity": 1, "idempotency_key": f"r{i}"}
             for i in range(820)]
    r = await api.post("/v1/usage", json={"events": batch})
    assert r.status_code == 200 and r.json()["accepted"] == 820
    nudges = lambda: [m for m in emails(session_factory, "acme-9") if m.campaign == "usage"]  # noqa: E731
    [mail] = await eventually(nudges)
    assert mail.template == "usage_nudge_trial"
    assert "Hi Ada" in mail.text and "180 are left" in mail.text
    assert "Professional is $49/month" in mail.text
    # the client retries the batch: nothing counted twice, no second email
    again = (await api.post("/v1/usage", json={"events": batch})).json()
    assert (again["accepted"], again["duplicates"]) == (0, 820)
    ent = (await api.get("/v1/customers/acme-9/entitlements")).json()
    assert ent["metrics"]["ai_requests"]["used"] == 820
    check = (await api.post("/v1/usage/check", json={"customer_id": "acme-9", "metric": "ai_requests",
                                                     "quantity": 5})).json()
    assert check["allowed"] and check["remaining"] == 175
    assert len(nudges()) == 1


async def test_the_usage_routes_follow_the_apps_settings(settings: Settings) -> None:
    """The settings given to create_app, not the environment, set the batch limit."""
    app = create_app(settings.model_copy(update={"usage_max_batch": 3}), temporal=None)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api", headers=AUTH
    ) as http:
        events = [{"customer_id": "x", "metric": "seats", "idempotency_key": f"k{i}"} for i in range(4)]
        r = await http.post("/v1/usage", json={"events": events})
    assert r.status_code == 413
    assert r.json()["detail"] == {"field": "events", "reason": "4 events in one batch; at most 3"}
