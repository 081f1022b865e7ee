"""The API's edge: the key is checked before the body, any string that cannot be stored is a
422 naming the field (SQLite and PostgreSQL), and bodies over a route's limit are refused
with 413 while they are read. Temporal is unreachable here (a lazy client to a closed
port): every request below is answered before a signal would be sent, or queued (202)."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from lifecycle.db import make_engine, make_session_factory
from lifecycle.models import Customer
from lifecycle.settings import Settings, load_settings
from lifecycle.temporal import connect
from starter.api.app import create_app
from tests.conftest import free_port

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


async def _serve(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    down = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    app = create_app(down, temporal=await connect(down, lazy=True))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api", timeout=30) as http:
            http.app = app  # type: ignore[attr-defined]
            yield http


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for http in _serve(settings.model_copy(update={"stripe_webhook_secret": SecretStr("whsec_x")})):
        yield http


@pytest.fixture
async def api_db(settings: Settings, db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The API on SQLite and on PostgreSQL, with customer ``acme-1`` in the database."""
    engine = make_engine(db_url)
    with make_session_factory(engine)() as s:
        s.add(Customer(id="acme-1", email="ada@acme.test", plan_code="starter", stage="trialing",
                       created_at=dt.datetime.now(dt.UTC)))
        s.commit()
    engine.dispose()
    async for http in _serve(settings.model_copy(update={"database_url": db_url})):
        yield http


def _v1_routes(app) -> list[tuple[str, str]]:
    """Every /v1 operation the app documents, with ``acme-1`` as the customer."""
    out = []
    for path, ops in app.openapi()["paths"].items():
        if path.startswith("/v1/"):
            out += [(m.upper(), path.replace("{customer_id}", "acme-1")) for m in ops]
    return out


# --- 1. the key before the body ---------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "Bearer kéy".encode(),  # UTF-8, as curl sends it
        "Bearer kéy".encode("latin-1"),
        b"Bearer \xff\xfe\x80",  # not UTF-8 at all
        b"Bearer test-key\xc3\xa9",  # the real key with a byte more
        "Bearer ключ".encode(),
    ],
)
async def test_any_bytes_in_authorization_are_a_401(api: httpx.AsyncClient, header: bytes) -> None:
    routes = _v1_routes(api.app)  # type: ignore[attr-defined]
    assert len(routes) >= 12
    for method, path in routes:
        r = await api.request(method, path, headers=[(b"authorization", header)], json={})
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json() == {"detail": "unknown API key"}


async def test_a_malformed_body_without_a_valid_key_is_a_401_not_a_422(api: httpx.AsyncClient) -> None:
    posts = [(m, p) for m, p in _v1_routes(api.app) if m in ("POST", "PUT", "PATCH")]  # type: ignore[attr-defined]
    assert len(posts) >= 7
    for method, path in posts:
        for headers in ([], [(b"authorization", b"Bearer wrong")], [(b"authorization", b"Basic eDp5")]):
            r = await api.request(
                method, path, content=b"{not json",
                headers=[(b"content-type", b"application/json"), *headers],
            )
            assert r.status_code == 401, (method, path, headers, r.status_code, r.text)
        # with the key, the same body is the usual 4xx about the body
        r = await api.request(method, path, content=b"{not json",
                              headers={**AUTH, "Content-Type": "application/json"})
        assert r.status_code in (400, 422), (method, path, r.text)


async def test_a_non_ascii_configured_key_works_as_utf8_bytes(settings: Settings) -> None:
    async for http in _serve(settings.model_copy(update={"api_keys": ["kéy-1", KEY]})):
        r = await http.get("/v1/customers/nobody", headers=[(b"authorization", "Bearer kéy-1".encode())])
        assert r.status_code == 404
        r = await http.get("/v1/customers/nobody", headers=AUTH)
        assert r.status_code == 404
        r = await http.get("/v1/customers/nobody", headers=[(b"authorization", "Bearer kéy-1".encode("latin-1"))])
        assert r.status_code == 401


# --- 2. text that cannot be stored ------------------------------------------------------

SIGNUP = {"customer_id": "new-1", "email": "ada@acme.test", "name": "Ada", "company": "Acme"}


def _loc(r: httpx.Response) -> list[str]:
    """The field names a 422 points at (FastAPI's list, or the usage routes' field)."""
    detail = r.json()["detail"]
    if isinstance(detail, dict):
        return [detail["field"]]
    return [str(err["loc"][-1]) for err in detail]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**SIGNUP, "name": "Ada\x00"}, "name"),
        ({**SIGNUP, "company": "Ac\x07me"}, "company"),
        ({**SIGNUP, "email": "a\x00da@acme.test"}, "email"),
        ({**SIGNUP, "timezone": "Europe/Ber\x00lin"}, "timezone"),
        ({**SIGNUP, "attributes": {"team": "a\x00b"}}, "attributes"),
        ({**SIGNUP, "attributes": {"a\x00": 1}}, "attributes"),
    ],
)
async def test_nul_and_controls_in_signup_are_a_422_naming_the_field(
    api_db: httpx.AsyncClient, body: dict, field: str
) -> None:
    r = await api_db.post("/v1/events/signup", json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    assert field in _loc(r)


@pytest.mark.parametrize("field", ["name", "email", "company", "timezone"])
async def test_a_lone_surrogate_is_a_422_naming_the_field(api_db: httpx.AsyncClient, field: str) -> None:
    value = "ada\\ud800@acme.test" if field == "email" else "Ada\\udfff"
    raw = json.dumps({**SIGNUP, field: "PLACEHOLDER"}).replace("PLACEHOLDER", value).encode()
    r = await api_db.post("/v1/events/signup", content=raw,
                          headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert field in _loc(r)


async def test_unicode_names_and_free_text_attributes_still_pass(api_db: httpx.AsyncClient) -> None:
    body = {**SIGNUP, "name": "Zoë Ødegård 山田", "attributes": {"note": "line 1\nline 2\tend", "n": [1, {"x": None}]}}
    r = await api_db.post("/v1/events/signup", json=body, headers=AUTH)
    assert r.status_code == 202, r.text  # valid: stored and queued (Temporal is down here)


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/v1/events/activation", {"customer_id": "acme-1", "fact": "used_api", "event_id": "e\x00"}, "event_id"),
        ("POST", "/v1/customers/acme-1/payment-method", {"payment_method_id": "pm_\x00"}, "payment_method_id"),
        ("POST", "/v1/customers/acme-1/subscription", {"plan": "starter", "payment_method_id": "pm_\x00"},
         "payment_method_id"),
        ("GET", "/v1/customers/a%00b", None, "customer_id"),
        ("GET", "/v1/customers/a%1Fb/entitlements", None, "customer_id"),
        ("GET", "/v1/customers/a%00b/subscription", None, "customer_id"),
        ("PUT", "/v1/customers/a%00b/email-preferences", {"marketing": True}, "customer_id"),
        ("POST", "/v1/usage", {"customer_id": "acme-1\x00", "metric": "seats", "idempotency_key": "k1"}, "customer_id"),
        ("POST", "/v1/usage", {"customer_id": "acme-1", "metric": "seats", "idempotency_key": "k\x00"}, "idempotency_key"),
        ("POST", "/v1/usage/check", {"customer_id": "acme-1", "metric": "seats", "idempotency_key": "k\x00"}, "idempotency_key"),
        ("GET", "/unsubscribe?token=ab%00cd", None, "token"),
    ],
)
async def test_nul_in_ids_keys_and_paths_is_a_422_naming_the_field(
    api_db: httpx.AsyncClient, method: str, path: str, body: dict | None, field: str
) -> None:
    r = await api_db.request(method, path, json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    assert field in _loc(r), r.text


async def test_a_usage_batch_with_a_nul_key_answers_per_event(api_db: httpx.AsyncClient) -> None:
    raw = (b'{"events": [{"customer_id": "acme-1", "metric": "seats", "idempotency_key": "ok-1"},'
           b' {"customer_id": "acme-1", "metric": "seats", "idempotency_key": "bad\\u0000"}]}')
    r = await api_db.post("/v1/usage", content=raw, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert body["results"][1]["field"] == "idempotency_key"
    assert "NUL" in body["results"][1]["reason"]
    # a lone surrogate is not JSON the usage parser takes at all
    r = await api_db.post("/v1/usage", content=raw.replace(b"u0000", b"ud800"),
                          headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["detail"]["field"] == "body"


# --- 3. size limits ---------------------------------------------------------------------

CHUNK = 64 * 1024


class Upload:
    """A streamed body of ``total`` bytes that counts what the server pulled from it."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0

    async def __aiter__(self):
        piece = b"x" * CHUNK
        while self.sent < self.total:
            self.sent += CHUNK
            yield piece


async def test_a_100_mb_stripe_webhook_is_refused_while_reading(api: httpx.AsyncClient) -> None:
    upload = Upload(100 * 1024 * 1024)
    started = time.monotonic()
    r = await api.post("/webhooks/stripe", content=upload, headers={"Stripe-Signature": "t=1,v1=00"})
    assert r.status_code == 413, r.text
    assert "1,048,576 bytes" in r.json()["detail"]
    assert upload.sent <= 1024 * 1024 + 2 * CHUNK  # stopped reading just past the 1 MiB limit
    assert time.monotonic() - started < 5


async def test_a_declared_content_length_over_the_limit_reads_nothing(api: httpx.AsyncClient) -> None:
    upload = Upload(100 * 1024 * 1024)
    r = await api.post("/webhooks/stripe", content=upload,
                       headers={"Stripe-Signature": "t=1,v1=00", "Content-Length": str(upload.total)})
    assert r.status_code == 413
    assert upload.sent == 0
    r = await api.post("/webhooks/sendgrid", content=b"[" + b" " * (5 * 1024 * 1024) + b"]")
    assert r.status_code == 413


async def test_v1_events_take_64_kib(api: httpx.AsyncClient) -> None:
    pad = {**SIGNUP, "name": "x" * 300}  # too long a name: 422 when the body is read at all
    small = json.dumps(pad).encode()
    r = await api.post("/v1/events/signup", content=small, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 422
    big = json.dumps({**pad, "padding": "y" * (64 * 1024)}).encode()
    r = await api.post("/v1/events/signup", content=big, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    upload = Upload(10 * 1024 * 1024)  # chunked, no Content-Length
    r = await api.post("/v1/events/activation", content=upload,
                       headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 413
    assert upload.sent <= 64 * 1024 + 2 * CHUNK


async def test_limits_come_from_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFECYCLE_STRIPE_WEBHOOK_MAX_BYTES", "2048")
    monkeypatch.setenv("LIFECYCLE_MAX_BODY_BYTES", "4096")
    loaded = load_settings(_env_file=None)
    assert (loaded.stripe_webhook_max_bytes, loaded.max_body_bytes) == (2048, 4096)
    tight = settings.model_copy(update={"stripe_webhook_max_bytes": 2048, "max_body_bytes": 4096,
                                        "stripe_webhook_secret": SecretStr("whsec_x")})
    async for http in _serve(tight):
        r = await http.post("/webhooks/stripe", content=b"{" + b" " * 3000 + b"}",
                            headers={"Stripe-Signature": "t=1,v1=00"})
        assert r.status_code == 413
        r = await http.post("/webhooks/stripe", content=b"{}", headers={"Stripe-Signature": "t=1,v1=00"})
        assert r.status_code == 400  # under the limit: read, and the signature refused
        r = await http.post("/v1/events/signup", json={**SIGNUP, "company": "z" * 5000}, headers=AUTH)
        assert r.status_code == 413


@pytest.mark.parametrize(
    ("attributes", "why"),
    [
        ({"blob": "a" * (20 * 1024)}, "bytes of JSON"),
        ({"a": {"b": {"c": {"d": {"e": 1}}}}}, "deeper"),
        ({f"k{i}": i for i in range(201)}, "keys"),
        ({"k" * 101: 1}, "longer than"),
    ],
)
async def test_oversized_attributes_are_a_422_naming_attributes(
    api: httpx.AsyncClient, attributes: dict, why: str
) -> None:
    r = await api.post("/v1/events/signup", json={**SIGNUP, "attributes": attributes}, headers=AUTH)
    assert r.status_code == 422, r.text
    assert _loc(r) == ["attributes"] and why in r.text


async def test_five_mb_of_attributes_is_never_read(api: httpx.AsyncClient) -> None:
    body = json.dumps({**SIGNUP, "attributes": {"blob": "a" * (5 * 1024 * 1024)}}).encode()
    r = await api.post("/v1/events/signup", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 413


# --- 4. the Temporal deadline on the subscription routes ---------------------------------


async def test_the_subscription_routes_answer_503_within_the_temporal_deadline(
    settings: Settings, sqlite_url: str
) -> None:
    """Temporal gone after the API connected (the test server stopped): each write is a 503
    within LIFECYCLE_TEMPORAL_DEADLINE_SECONDS (1 s here) and a margin, not after the
    client's ~9 s of retries."""
    from temporalio.testing import WorkflowEnvironment

    from lifecycle.temporal import test_server_binary

    engine = make_engine(sqlite_url)
    with make_session_factory(engine)() as s:
        s.add(Customer(id="acme-1", email="ada@acme.test", plan_code="starter", stage="trialing",
                       created_at=dt.datetime.now(dt.UTC)))
        s.commit()
    engine.dispose()
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(test_server_binary()))
    await env.shutdown()  # its client stays, connected to nothing
    app = create_app(settings.model_copy(update={"temporal_deadline_seconds": 1.0}), temporal=env.client)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api", timeout=30) as http:
            for method, kwargs in [("POST", {"json": {"plan": "starter"}}),
                                   ("PATCH", {"json": {"interval": "year"}}), ("DELETE", {})]:
                began = time.monotonic()
                r = await http.request(method, "/v1/customers/acme-1/subscription", headers=AUTH, **kwargs)
                took = time.monotonic() - began
                assert r.status_code == 503, (method, r.text)
                assert took < 3.0, (method, took)
