"""The usage HTTP API on SQLite and PostgreSQL: results per event, and a clear 4xx for each
bad input with nothing half-recorded."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from lifecycle.models import UsageCounter, UsageEvent
from tests.support.usage import Db, usage_app

UTC = dt.UTC


@pytest.fixture
async def api(usage_db: Db) -> AsyncIterator[httpx.AsyncClient]:
    app = usage_app(usage_db.factory)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://usage.test") as client:
        yield client


def stored(db: Db, cid: str) -> tuple[int, int]:
    with db.factory() as s:
        n = s.scalar(select(func.count()).select_from(UsageEvent).where(UsageEvent.customer_id == cid))
        c = s.scalar(select(func.count()).select_from(UsageCounter)
                     .where(UsageCounter.customer_id == cid))
    return n or 0, c or 0


def event(cid: str, key: str = "k1", **kw: object) -> dict[str, object]:
    return {"customer_id": cid, "metric": "ai_requests", "quantity": 1, "idempotency_key": key,
            "timestamp": dt.datetime.now(UTC).isoformat(), **kw}


async def test_single_event_then_its_replay(api: httpx.AsyncClient, usage_db: Db) -> None:
    cid = usage_db.customer()
    first = await api.post("/v1/usage", json=event(cid))
    assert first.status_code == 201
    assert first.json() == {"index": 0, "idempotency_key": "k1", "status": "accepted"}
    again = await api.post("/v1/usage", json=event(cid))
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert stored(usage_db, cid) == (1, 1)


async def test_batch_reports_each_event(api: httpx.AsyncClient, usage_db: Db) -> None:
    cid = usage_db.customer("business")
    batch = [event(cid, f"k{i}") for i in range(1000)]
    batch[10] = event(cid, "bad", quantity=-1)
    r = await api.post("/v1/usage", json={"events": batch})
    assert r.status_code == 200
    body = r.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (999, 0, 1)
    assert body["results"][10] == {"index": 10, "idempotency_key": "bad", "status": "rejected",
                                   "field": "quantity", "reason": "must not be negative, got -1"}
    replay = (await api.post("/v1/usage", json={"events": batch})).json()
    assert (replay["accepted"], replay["duplicates"], replay["rejected"]) == (0, 999, 1)
    assert stored(usage_db, cid) == (999, 1)
    ent = (await api.get(f"/v1/customers/{cid}/entitlements")).json()
    assert ent["metrics"]["ai_requests"]["used"] == 999


async def test_check_and_entitlements(api: httpx.AsyncClient, usage_db: Db) -> None:
    cid = usage_db.customer("starter")
    r = await api.post("/v1/usage/check", json={"customer_id": cid, "metric": "ai_requests",
                                                "quantity": 1000})
    assert r.status_code == 200 and r.json()["allowed"] is True and r.json()["remaining"] == 0
    r = await api.post("/v1/usage/check", json={"customer_id": cid, "metric": "ai_requests"})
    body = r.json()
    assert r.status_code == 200 and body["allowed"] is False
    assert (body["remaining"], body["limit"], body["limit_kind"]) == (0, 1000, "hard")
    ent = await api.get(f"/v1/customers/{cid}/entitlements")
    assert ent.status_code == 200
    e = ent.json()
    assert e["plan"] == {"code": "starter", "name": "Starter", "monthly_price_cents": 1900}
    assert set(e["features"]) >= {"api_access", "team_features", "custom_models", "sso"}
    assert e["next_plan"]["name"] == "Professional" and e["next_plan"]["monthly_price_cents"] == 4900


def _future() -> str:
    return (dt.datetime.now(UTC) + dt.timedelta(days=1)).isoformat()


def _before() -> str:
    return (dt.datetime.now(UTC) - dt.timedelta(days=30)).isoformat()


BAD_SINGLE = [
    # (name, mutate(event) -> body, status, field, reason fragment)
    ("unknown customer", lambda e: {**e, "customer_id": "nobody"}, 404, "customer_id", "unknown customer"),
    ("unknown metric", lambda e: {**e, "metric": "gpu_hours"}, 422, "metric", "unknown metric"),
    ("negative quantity", lambda e: {**e, "quantity": -5}, 422, "quantity", "negative"),
    ("non-numeric quantity", lambda e: {**e, "quantity": "lots"}, 422, "quantity", "expected a number"),
    ("boolean quantity", lambda e: {**e, "quantity": True}, 422, "quantity", "expected a number"),
    ("too precise quantity", lambda e: {**e, "quantity": 0.1234567}, 422, "quantity", "6 decimal"),
    ("future timestamp", lambda e: {**e, "timestamp": _future()}, 422, "timestamp", "future"),
    ("timestamp without zone", lambda e: {**e, "timestamp": "2026-11-25T08:00:00"}, 422, "timestamp",
     "no time zone"),
    ("garbage timestamp", lambda e: {**e, "timestamp": "yesterday"}, 422, "timestamp", "ISO 8601"),
    ("missing key", lambda e: {k: v for k, v in e.items() if k != "idempotency_key"}, 422,
     "idempotency_key", "required"),
    ("empty customer", lambda e: {**e, "customer_id": ""}, 422, "customer_id", "empty"),
    ("long key", lambda e: {**e, "idempotency_key": "k" * 201}, 422, "idempotency_key", "longer"),
]


@pytest.mark.parametrize("name,mutate,status,field,reason", BAD_SINGLE, ids=[b[0] for b in BAD_SINGLE])
async def test_each_bad_event_gets_its_4xx(api: httpx.AsyncClient, usage_db: Db, name: str,
                                           mutate, status: int, field: str, reason: str) -> None:
    cid = usage_db.customer()
    r = await api.post("/v1/usage", json=mutate(event(cid)))
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert detail["field"] == field and reason in detail["reason"], detail
    if name != "missing key":  # check-and-record answers the same (its key is optional)
        c = await api.post("/v1/usage/check", json=mutate(event(cid)))
        assert c.status_code == status and c.json()["detail"]["field"] == field, c.text
    assert stored(usage_db, cid) == (0, 0)


async def test_before_the_customer_existed(api: httpx.AsyncClient, usage_db: Db) -> None:
    cid = usage_db.customer(created_at=dt.datetime.now(UTC) - dt.timedelta(days=1))
    r = await api.post("/v1/usage", json=event(cid, timestamp=_before()))
    assert r.status_code == 422
    assert r.json()["detail"]["field"] == "timestamp"
    assert "before the customer existed" in r.json()["detail"]["reason"]
    assert stored(usage_db, cid) == (0, 0)


async def test_malformed_and_oversized_bodies(api: httpx.AsyncClient, usage_db: Db) -> None:
    cid = usage_db.customer()
    cases = [
        (b'{"customer_id": "x", ', 400, "body", "malformed JSON"),
        (b"", 400, "body", "empty"),
        (b"[1, 2]", 422, "body", "expected a JSON object"),
        (b'{"events": {"a": 1}}', 422, "events", "expected a list"),
        (b'{"events": []}', 422, "events", "empty"),
    ]
    for body, status, field, reason in cases:
        r = await api.post("/v1/usage", content=body, headers={"content-type": "application/json"})
        assert r.status_code == status, (body, r.text)
        assert r.json()["detail"]["field"] == field and reason in r.json()["detail"]["reason"]
    too_many = {"events": [event(cid, f"k{i}") for i in range(1001)]}
    r = await api.post("/v1/usage", json=too_many)
    assert r.status_code == 413
    assert r.json()["detail"] == {"field": "events",
                                  "reason": "1001 events in one batch; at most 1000"}
    huge = b'{"events": [' + b" " * 5_000_000 + b"]}"
    r = await api.post("/v1/usage", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["detail"]["field"] == "body"
    bad_check = await api.post("/v1/usage/check", content=b"{nope")
    assert bad_check.status_code == 400
    assert stored(usage_db, cid) == (0, 0)


async def test_a_batch_of_only_bad_events_is_refused(api: httpx.AsyncClient, usage_db: Db) -> None:
    cid = usage_db.customer()
    r = await api.post("/v1/usage", json={"events": [event(cid, quantity=-1), event("nobody")]})
    assert r.status_code == 422
    assert [x["field"] for x in r.json()["results"]] == ["quantity", "customer_id"]


async def test_unknown_customer_entitlements(api: httpx.AsyncClient) -> None:
    r = await api.get("/v1/customers/nobody/entitlements")
    assert r.status_code == 404
    assert r.json()["detail"] == {"field": "customer_id", "reason": "unknown customer 'nobody'"}
