"""/v1/webhook-endpoints and ``lifecycle webhooks`` against SQLite and PostgreSQL: the
secret is shown once, bad URLs and unknown event types are a 422 naming the field, nothing
is stored for a refused request."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from lifecycle.settings import Settings
from starter.api.app import create_app

AUTH = {"Authorization": "Bearer test-key"}
CLI = str(Path(sys.prefix) / "bin" / "lifecycle")
ENGINE = "http://127.0.0.1:8000"


@pytest.fixture
async def api(db_url: str, settings: Settings, ts_env) -> AsyncIterator[httpx.AsyncClient]:
    config = settings.model_copy(update={"database_url": db_url, "public_url": ENGINE,
                                         "webhook_allow_private": False})
    app = create_app(config, temporal=ts_env.client)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api.test", headers=AUTH
    ) as http:
        yield http


async def test_an_endpoint_is_registered_with_a_secret_shown_once_and_removed(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/webhook-endpoints", json={
        "url": "https://product.example/hooks", "events": ["customer.stage_changed", "usage.threshold_crossed"],
        "description": "billing service",
    })
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_") and created["enabled"] is True
    Webhook(created["secret"])  # a secret the product's own library takes
    listed = (await api.get("/v1/webhook-endpoints")).json()
    assert [e["id"] for e in listed] == [created["id"]]
    assert "secret" not in listed[0] and listed[0]["events"] == ["customer.stage_changed", "usage.threshold_crossed"]
    assert (await api.delete(f"/v1/webhook-endpoints/{created['id']}")).status_code == 204
    assert (await api.get("/v1/webhook-endpoints")).json() == []
    gone = await api.delete(f"/v1/webhook-endpoints/{created['id']}")
    assert gone.status_code == 404 and "unknown webhook endpoint" in gone.json()["detail"]


@pytest.mark.parametrize(("url", "why"), [
    ("ftp://product.example/hooks", "http:// or https://"),
    ("javascript:alert(1)", "http:// or https://"),
    ("https:///no-host", "no host"),
    ("http://product.example:99999/x", "invalid port"),
    ("https://product.example:0/x", "invalid port '0': a number from 1 to 65535"),
    ("https://product.example:https/x", "invalid port 'https': a number from 1 to 65535"),
    ("https://ops:s3cret@product.example/x", "must not carry a user name or password"),
    (ENGINE + "/v1/events/signup", "points at the engine itself"),
    ("http://localhost:8000/anything", "points at the engine itself"),
])
async def test_a_url_that_cannot_receive_is_a_422_naming_url(api: httpx.AsyncClient, url: str, why: str) -> None:
    r = await api.post("/v1/webhook-endpoints", json={"url": url, "events": ["campaign.finished"]})
    assert r.status_code == 422, r.text
    [err] = r.json()["detail"]
    assert err["loc"] == ["body", "url"] and why in err["msg"]
    assert "s3cret" not in r.text  # a password is never echoed
    assert (await api.get("/v1/webhook-endpoints")).json() == []  # nothing stored


async def test_loopback_on_another_port_is_refused_and_an_unresolvable_name_is_a_warning(
    api: httpx.AsyncClient,
) -> None:
    """127.0.0.1:9000 is inside (LIFECYCLE_WEBHOOK_ALLOW_PRIVATE=true would take it); a name
    that does not resolve from here is stored with a warning (each delivery checks it)."""
    r = await api.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9000/hooks",
                                                     "events": ["campaign.finished"]})
    assert r.status_code == 422 and "loopback" in r.json()["detail"][0]["msg"], r.text
    r = await api.post("/v1/webhook-endpoints", json={"url": "https://receiver.invalid/hooks",
                                                     "events": ["campaign.finished"]})
    assert r.status_code == 201, r.text
    assert "does not resolve" in r.json()["warnings"][0]


@pytest.mark.parametrize("events", [[], ["customer.deleted"], ["campaign.finished", "nope"]])
async def test_unknown_or_no_event_types_are_a_422(api: httpx.AsyncClient, events: list[str]) -> None:
    r = await api.post("/v1/webhook-endpoints", json={"url": "https://product.example/h", "events": events})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][:2] == ["body", "events"]


async def test_without_a_key_the_routes_answer_401(api: httpx.AsyncClient) -> None:
    r = await api.get("/v1/webhook-endpoints", headers={"Authorization": ""})
    assert r.status_code == 401


def run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIFECYCLE_DATABASE_URL": settings.database_url, "LIFECYCLE_PUBLIC_URL": ENGINE,
           "COLUMNS": "250"}
    return subprocess.run([CLI, "webhooks", *args], env=env, capture_output=True, text=True, timeout=60)


def test_the_cli_adds_lists_and_removes_endpoints(settings: Settings) -> None:
    added = run(settings, "add", "https://product.example/hooks", "--events",
                "customer.stage_changed,campaign.finished", "--events", "subscription.changed")
    assert added.returncode == 0, added.stdout + added.stderr
    assert "secret: whsec_" in added.stdout
    endpoint_id = added.stdout.split()[1]
    listed = run(settings, "list")
    assert endpoint_id in listed.stdout and "enabled" in listed.stdout and "whsec_" not in listed.stdout
    assert "subscription.changed" in listed.stdout
    bad = run(settings, "add", ENGINE + "/x", "--events", "campaign.finished")
    assert bad.returncode == 2 and "points at the engine itself" in bad.stdout
    unknown = run(settings, "add", "https://p.example/h", "--events", "customer.exploded")
    assert unknown.returncode == 2 and "unknown event type" in unknown.stdout
    assert run(settings, "remove", endpoint_id).returncode == 0
    assert "no webhook endpoints" in run(settings, "list").stdout
    assert run(settings, "remove", endpoint_id).returncode == 1
    assert "no deliveries" in run(settings, "deliveries", "--failed").stdout
