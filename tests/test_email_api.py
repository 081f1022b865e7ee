"""Unsubscribe link (GET page, POST one-click) and SendGrid's Event Webhook, over HTTP."""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.contracts.email import SendEmailInput
from lifecycle.db import session_scope
from lifecycle.email.providers import OutboxProvider
from lifecycle.email.service import EmailService
from lifecycle.email.suppressions import remove_unsubscribe
from lifecycle.email.unsubscribe import make_token
from lifecycle.models import EmailMessage, LifecycleEvent, Suppression
from lifecycle.settings import Settings, SettingsError, load_settings
from starter.api import email as email_api
from tests.support.email import EmailDB, make_settings, utc

SECRET = "test-secret-not-for-production"

# SendGrid's side of the Event Webhook: an ECDSA P-256 key pair; SendGrid shows the public
# half (base64 DER) under Mail Settings and signs timestamp + body with the private half.
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
SENDGRID_PUBLIC_KEY = base64.b64encode(SENDGRID_KEY.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


def signed(body: bytes, ts: str = "1770000000") -> dict[str, str]:
    """The headers SendGrid sends with ``body``."""
    sig = base64.b64encode(SENDGRID_KEY.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    return {email_api.SIGNATURE_HEADER: sig, email_api.TIMESTAMP_HEADER: ts,
            "Content-Type": "application/json"}


def post_events(client: TestClient, events: Any) -> Any:
    body = json.dumps(events).encode()
    return client.post("/webhooks/sendgrid", content=body, headers=signed(body))


def build_app(email_db: EmailDB, calls: list, **settings: Any) -> FastAPI:
    app = FastAPI()
    app.include_router(email_api.router)
    app.state.settings = make_settings(email_db.url, **settings)
    app.state.session_factory = email_db.factory

    async def notify() -> Any:
        async def record(customer_id: str, event: Any) -> None:
            calls.append((customer_id, event))
        return record

    app.dependency_overrides[email_api._notify] = notify
    return app


@pytest.fixture
def api(email_db: EmailDB) -> Iterator[tuple[TestClient, list, EmailDB]]:
    calls: list = []
    email_db.add_customer("cus_1", email="grace@example.org")
    app = build_app(email_db, calls, sendgrid_webhook_public_key=SENDGRID_PUBLIC_KEY)
    with TestClient(app) as client:
        yield client, calls, email_db


def suppressions(db: EmailDB | sessionmaker[Session]) -> list[tuple[str, str, str | None]]:
    with session_scope(db.factory if isinstance(db, EmailDB) else db) as s:
        return [(r.email, r.reason, r.customer_id) for r in s.scalars(select(Suppression))]


def test_get_shows_a_confirmation_and_changes_nothing(api) -> None:
    client, calls, db = api
    r = client.get("/unsubscribe", params={"token": make_token(SECRET, "cus_1")})
    assert r.status_code == 200 and "<form method='post'" in r.text and "gr…@example.org" in r.text
    assert suppressions(db) == [] and calls == []


def test_the_confirmation_form_posts_the_token_in_its_body_not_in_its_url(api) -> None:
    client, calls, db = api
    token = make_token(SECRET, "cus_1")
    page = client.get("/unsubscribe", params={"token": token}).text
    form = re.search(r"<form method='post' action='([^']*)'>(.*?)</form>", page)
    assert form and token not in form.group(1) and "?" not in form.group(1)
    field = re.search(r"<input type='hidden' name='token' value='([^']*)'>", form.group(2))
    assert field and html.unescape(field.group(1)) == token
    # what the browser sends: the action URL, the token in the form body
    r = client.post(form.group(1), data={"token": html.unescape(field.group(1))})
    assert r.status_code == 200 and "You are unsubscribed" in r.text
    assert suppressions(db) == [("grace@example.org", "unsubscribe", "cus_1")] and len(calls) == 1
    assert client.post("/unsubscribe").status_code == 400  # no token anywhere


def test_one_click_post_unsubscribes_and_tells_the_workflow(api) -> None:
    client, calls, db = api
    token = make_token(SECRET, "cus_1")
    r = client.post(f"/unsubscribe?token={token}", data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200 and "You are unsubscribed" in r.text
    assert suppressions(db) == [("grace@example.org", "unsubscribe", "cus_1")]
    [(customer_id, event)] = calls
    assert customer_id == "cus_1" and event.kind == "unsubscribed"
    with session_scope(db.factory) as s:
        [entry] = s.scalars(select(LifecycleEvent))
        assert entry.kind == "unsubscribed" and entry.event_key == event.event_id
    # twice is harmless: one suppression, the workflow told once
    assert client.post(f"/unsubscribe?token={token}").status_code == 200
    assert len(suppressions(db)) == 1 and len(calls) == 1


async def test_the_link_in_a_sent_email_unsubscribes_and_stops_marketing(api) -> None:
    client, calls, db = api
    service = EmailService(db.factory, OutboxProvider(), make_settings(db.url))
    sent = await service.send(SendEmailInput(customer_id="cus_1", template="welcome",
                                             idempotency_key="w1", campaign="onboarding",
                                             step="welcome", now=utc(2026, 3, 3, 12)))
    with session_scope(db.factory) as s:
        header = s.get(EmailMessage, sent.message_id).headers["List-Unsubscribe"]
    url = header.strip("<>").replace("https://lifecycle.example.com", "")
    assert client.post(url).status_code == 200
    later = await service.send(SendEmailInput(customer_id="cus_1", template="tip_api",
                                              idempotency_key="w2", campaign="onboarding",
                                              step="tip_api", now=utc(2026, 3, 3, 13)))
    assert later.status == "skipped" and later.reason == "unsubscribed"


@pytest.mark.parametrize("token", ["garbage", make_token("another-secret", "cus_1"),
                                   make_token(SECRET, "cus_unknown")])
def test_a_bad_token_is_refused_and_records_nothing(api, token: str) -> None:
    client, calls, db = api
    r = client.post("/unsubscribe", params={"token": token})
    assert r.status_code in (400, 404) and "token" in r.json()["detail"]
    assert suppressions(db) == [] and calls == []


def _message(db: EmailDB) -> int:
    with session_scope(db.factory) as s:
        row = EmailMessage(idempotency_key="x1", customer_id="cus_1", campaign="onboarding",
                           step="welcome", template="welcome", to_address="grace@example.org",
                           from_address="a@b.c", subject="s", html="h", text="t",
                           provider="sendgrid", provider_message_id="sgid1", status="sent")
        s.add(row)
        s.flush()
        return row.id


def test_webhook_moves_status_forward_and_suppresses_bounces_spam_and_unsubscribes(api) -> None:
    client, calls, db = api
    mid = _message(db)
    events = [
        {"event": "delivered", "email": "grace@example.org", "sg_message_id": "sgid1.filter0001",
         "timestamp": 1770000000},
        {"event": "click", "email": "grace@example.org", "lifecycle_message_id": str(mid),
         "timestamp": 1770000100},
        {"event": "open", "email": "grace@example.org", "lifecycle_message_id": str(mid),
         "timestamp": 1770000200},  # arrives late: must not move "clicked" back
        {"event": "bounce", "type": "bounce", "email": "Gone@Example.org", "timestamp": 1770000300},
        {"event": "bounce", "type": "blocked", "email": "soft@example.org", "timestamp": 1770000300},
        {"event": "spamreport", "email": "angry@example.org", "timestamp": 1770000400},
        {"event": "unsubscribe", "email": "grace@example.org", "timestamp": 1770000500},
    ]
    r = post_events(client, events)
    assert r.status_code == 200 and r.json() == {"received": 7}
    with session_scope(db.factory) as s:
        assert s.get(EmailMessage, mid).status == "clicked"
        kinds = [e.kind for e in s.scalars(select(LifecycleEvent))]
    assert sorted(suppressions(db)) == [
        ("angry@example.org", "spam_report", None),
        ("gone@example.org", "bounce", None),
        ("grace@example.org", "unsubscribe", "cus_1"),
    ]
    assert kinds == ["unsubscribed"]
    assert [c for c, _ in calls] == ["cus_1"]
    # SendGrid retries deliveries: the same batch again changes nothing
    assert post_events(client, events).status_code == 200
    assert len(suppressions(db)) == 3 and len(calls) == 1


def test_webhook_unsubscribe_after_opting_back_in_counts_again_a_redelivery_does_not(api) -> None:
    client, calls, db = api
    first = [{"event": "unsubscribe", "email": "grace@example.org", "sg_event_id": "ev-1"}]
    assert post_events(client, first).status_code == 200
    with session_scope(db.factory) as s:  # the customer opts back in (as the preferences route does)
        assert remove_unsubscribe(s, customer_id="cus_1", email="grace@example.org")
    assert post_events(client, first).status_code == 200  # SendGrid redelivers the old event
    assert suppressions(db) == []
    again = [{"event": "unsubscribe", "email": "grace@example.org", "sg_event_id": "ev-2"}]
    assert post_events(client, again).status_code == 200
    assert suppressions(db) == [("grace@example.org", "unsubscribe", "cus_1")]
    with session_scope(db.factory) as s:
        keys = [e.event_key for e in s.scalars(select(LifecycleEvent).order_by(LifecycleEvent.id))]
    assert [event.event_id for _, event in calls] == keys and len(set(keys)) == 2


async def test_unsubscribe_opt_in_unsubscribe_reaches_timeline_and_workflow_each_time(
    ts_env, settings: Settings, session_factory,
) -> None:
    """The real API and worker on the time-skipping server: every action counts once."""
    import httpx

    from starter.api.app import create_app
    from tests.support.helpers import eventually
    from worker import build_worker
    from workflows.customer import CustomerWorkflow

    app = create_app(settings, temporal=ts_env.client)
    handle = ts_env.client.get_workflow_handle("customer-ada")
    token = make_token(settings.unsubscribe_secret, "ada")

    async def opted_out(expected: bool) -> bool:
        return (await handle.query(CustomerWorkflow.state)).marketing_opt_out is expected

    def timeline() -> list[str]:
        with session_scope(session_factory) as s:
            return [e.kind for e in s.scalars(
                select(LifecycleEvent).where(LifecycleEvent.kind.in_(["unsubscribed", "resubscribed"]))
                .order_by(LifecycleEvent.id))]

    async def unsubscribe_ids() -> list[str]:
        seen = (await handle.query(CustomerWorkflow.state)).seen_event_ids
        return [i for i in seen if i.startswith("unsubscribed:")]

    async with build_worker(ts_env.client, settings, session_factory), app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api",
                                     headers={"Authorization": "Bearer test-key"}) as http:
            r = await http.post("/v1/events/signup", json={"customer_id": "ada", "email": "ada@acme.test"})
            assert r.status_code == 201
            assert (await http.post("/unsubscribe", params={"token": token})).status_code == 200
            await eventually(lambda: opted_out(True))
            r = await http.put("/v1/customers/ada/email-preferences", json={"marketing": True})
            assert r.json()["marketing"] is True
            await eventually(lambda: opted_out(False))
            assert (await http.post("/unsubscribe", params={"token": token})).status_code == 200
            await eventually(lambda: opted_out(True))
            assert timeline() == ["unsubscribed", "resubscribed", "unsubscribed"]
            assert len(await unsubscribe_ids()) == 2
            # the same link clicked again while unsubscribed: nothing new anywhere
            assert (await http.post("/unsubscribe", params={"token": token})).status_code == 200
            assert suppressions(session_factory) == [("ada@acme.test", "unsubscribe", "ada")]
            assert timeline() == ["unsubscribed", "resubscribed", "unsubscribed"]
            # signals are taken in order: once this opt-in shows, a signal of the retry would have too
            await http.put("/v1/customers/ada/email-preferences", json={"marketing": True})
            await eventually(lambda: opted_out(False))
            assert len(await unsubscribe_ids()) == 2


def test_webhook_rejects_bad_json_with_a_clear_error(api) -> None:
    client, _, _ = api
    r = client.post("/webhooks/sendgrid", content=b"{not json", headers=signed(b"{not json"))
    assert r.status_code == 400 and r.json()["detail"].startswith("body: not JSON")
    r = post_events(client, {"event": "open"})
    assert r.status_code == 400 and "array" in r.json()["detail"]


BOUNCE_AND_SPAM = [{"event": "bounce", "type": "bounce", "email": "grace@example.org"},
                   {"event": "spamreport", "email": "grace@example.org"}]


def test_webhook_without_a_key_is_closed_and_names_the_setting(email_db: EmailDB) -> None:
    calls: list = []
    email_db.add_customer("cus_1", email="grace@example.org")
    with TestClient(build_app(email_db, calls)) as client:
        r = client.post("/webhooks/sendgrid", json=BOUNCE_AND_SPAM)
        assert r.status_code == 503
        assert "LIFECYCLE_SENDGRID_WEBHOOK_PUBLIC_KEY" in r.json()["detail"]
        # a signature made with some key does not help when we have none to check it with
        body = json.dumps(BOUNCE_AND_SPAM).encode()
        assert client.post("/webhooks/sendgrid", content=body, headers=signed(body)).status_code == 503
    assert suppressions(email_db) == [] and calls == []
    with session_scope(email_db.factory) as s:
        assert list(s.scalars(select(LifecycleEvent))) == []


def test_webhook_signature_is_verified_when_a_key_is_set(api) -> None:
    client, calls, db = api
    body = json.dumps(BOUNCE_AND_SPAM).encode()
    headers = signed(body)
    unsigned = client.post("/webhooks/sendgrid", content=body)
    assert unsigned.status_code == 401
    forged = client.post("/webhooks/sendgrid", content=body.replace(b"grace@", b"ada@"), headers=headers)
    assert forged.status_code == 403
    other_time = client.post("/webhooks/sendgrid", content=body,
                             headers={**headers, email_api.TIMESTAMP_HEADER: "1770000001"})
    assert other_time.status_code == 403
    garbage = client.post("/webhooks/sendgrid", content=body,
                          headers={**headers, email_api.SIGNATURE_HEADER: "not base64!"})
    assert garbage.status_code == 403
    assert suppressions(db) == [] and calls == []
    good = client.post("/webhooks/sendgrid", content=body, headers=headers)
    assert good.status_code == 200
    assert sorted(suppressions(db)) == [("grace@example.org", "bounce", "cus_1"),
                                        ("grace@example.org", "spam_report", "cus_1")]


def test_webhook_unsigned_only_with_the_insecure_setting(email_db: EmailDB) -> None:
    calls: list = []
    app = build_app(email_db, calls, sendgrid_webhook_insecure_no_verify=True)
    with TestClient(app) as client:
        r = client.post("/webhooks/sendgrid", json=BOUNCE_AND_SPAM)
        assert r.status_code == 200 and r.json() == {"received": 2}
    assert sorted(suppressions(email_db)) == [("grace@example.org", "bounce", None),
                                              ("grace@example.org", "spam_report", None)]


@pytest.mark.parametrize("provider", ["smtp", "sendgrid"])
def test_real_providers_refuse_to_start_with_unverified_webhooks(
    monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    monkeypatch.setenv("LIFECYCLE_EMAIL_PROVIDER", provider)
    monkeypatch.setenv("LIFECYCLE_SENDGRID_WEBHOOK_INSECURE_NO_VERIFY", "true")
    with pytest.raises(SettingsError) as err:
        load_settings(_env_file=None)
    assert "LIFECYCLE_SENDGRID_WEBHOOK_INSECURE_NO_VERIFY" in str(err.value)
    assert f"LIFECYCLE_EMAIL_PROVIDER={provider}" in str(err.value)
    monkeypatch.setenv("LIFECYCLE_EMAIL_PROVIDER", "outbox")  # local use: allowed
    assert load_settings(_env_file=None).sendgrid_webhook_insecure_no_verify is True


@pytest.mark.parametrize("key", ["not-a-key", "AAAA",
                                 "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"])
def test_a_malformed_webhook_key_fails_at_start(key: str) -> None:
    with pytest.raises(SettingsError, match="LIFECYCLE_SENDGRID_WEBHOOK_PUBLIC_KEY"):
        load_settings(sendgrid_webhook_public_key=key, _env_file=None)


def test_the_real_app_serves_unsubscribe_without_an_api_key_even_with_temporal_down(
    email_db: EmailDB,
) -> None:
    from starter.api.app import create_app

    email_db.add_customer("cus_1", email="grace@example.org")
    # nothing listens at this address: the lazy client fails when the route signals
    settings = make_settings(email_db.url, temporal_address="127.0.0.1:1", api_keys=["k"],
                             public_url="http://127.0.0.1:8000")  # development: the short key may start
    with TestClient(create_app(settings)) as client:
        r = client.post("/unsubscribe", params={"token": make_token(SECRET, "cus_1")})
        assert r.status_code == 200 and "You are unsubscribed" in r.text
        # no LIFECYCLE_SENDGRID_WEBHOOK_PUBLIC_KEY: the real app's webhook is closed
        assert client.post("/webhooks/sendgrid", json=BOUNCE_AND_SPAM).status_code == 503
    assert suppressions(email_db) == [("grace@example.org", "unsubscribe", "cus_1")]


async def test_ten_clicks_of_the_same_unsubscribe_link_at_once_all_answer_and_write_one_row(
    email_db: EmailDB,
) -> None:
    """A check-then-insert let all but one concurrent click fail on uq_suppressions_email_reason (500)."""
    import asyncio

    import httpx

    email_db.add_customer("cus_1", email="grace@example.org")
    app = build_app(email_db, [])
    token = make_token(SECRET, "cus_1")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answers = await asyncio.gather(*(client.post(f"/unsubscribe?token={token}") for _ in range(10)))
    assert [r.status_code for r in answers] == [200] * 10
    assert suppressions(email_db) == [("grace@example.org", "unsubscribe", "cus_1")]
