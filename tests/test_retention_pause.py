"""A save offer's pause and the customer's access (policy ``save_offers.pause_access``,
default ``none``): while billing is paused the product's usage check refuses metered usage
with the reason, the entitlements say so, the product hears it (entitlements_changed),
and the resume restores all of it. Real workflows, activities and localstripe."""

from __future__ import annotations

import datetime as dt
from datetime import timedelta

import httpx
import pytest

from lifecycle.contracts.winback import AccessPauseRecord
from lifecycle.db import session_scope
from lifecycle.retention.pauses import record_access_pause
from lifecycle.usage.service import UsageService
from lifecycle.webhooks.endpoints import add_endpoint
from tests.support.retention import Retained
from tests.support.usage import Db, usage_app
from tests.support.webhook_receiver import Receiver, receiving
from tests.test_usage_client import product_app


def _events(receiver: Receiver, cid: str) -> list[dict]:
    """What the product heard: entitlements changes for ``cid``."""
    return [e["data"] for e in receiver.accepted()
            if e["type"] == "customer.entitlements_changed" and e["data"].get("customer_id") == cid]


async def _check(ret: Retained, cid: str) -> dict:
    r = await ret.http.post("/v1/usage/check", json={"customer_id": cid, "metric": "ai_requests", "quantity": 1})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.usefixtures("ts_env")
async def test_a_paused_customer_has_no_metered_usage_until_billing_resumes(ts_env, retained: Retained) -> None:
    async with receiving() as receiver:
        with session_scope(retained.sessions) as s:
            receiver.secrets["/hooks"] = add_endpoint(
                s, receiver.url(), ["customer.entitlements_changed"], engine_url=retained.settings.public_url,
                allow_private=True, https_only=False).secret
        await _pause_and_resume(ts_env, retained, receiver)


async def _pause_and_resume(ts_env, retained: Retained, receiver: Receiver) -> None:
    cid = await retained.subscriber()
    assert (await _check(retained, cid))["allowed"] is True
    offered = await retained.http.delete(f"/v1/customers/{cid}/subscription", params={"reason": "temporary"})
    offer_id = offered.json()["save_offer"]["offer_id"]

    accepted = await retained.http.post(f"/v1/customers/{cid}/subscription/offers/{offer_id}/accept")

    assert accepted.status_code == 200, accepted.text
    refused = await _check(retained, cid)
    assert (refused["allowed"], refused["paused"], refused["payment_overdue"]) == (False, True, False)
    assert "paused until" in refused["reason"] and "metered usage are not available" in refused["reason"]
    ent = (await retained.http.get(f"/v1/customers/{cid}/entitlements")).json()
    assert ent["paused"]["access"] == "none" and not any(ent["features"].values())
    assert not any(m["allowed"] for m in ent["metrics"].values())
    await receiver.until(lambda r: any(e.get("reason") == "paused" for e in _events(r, cid)))
    paused = [e for e in _events(receiver, cid) if e.get("reason") == "paused"]
    assert [(e["access"], e["paused"]) for e in paused] == [("none", True)]

    await ts_env.sleep(timedelta(days=61))  # the two months' pause ends: billing and access resume

    await receiver.until(lambda r: any(e.get("reason") == "pause_ended" for e in _events(r, cid)))
    assert (await _check(retained, cid))["allowed"] is True
    ent = (await retained.http.get(f"/v1/customers/{cid}/entitlements")).json()
    assert ent["paused"] is None and any(ent["features"].values())


async def test_read_only_keeps_the_features_and_the_product_answers_402_subscription_paused(usage_db: Db) -> None:
    """``read_only``, as the entity's activity records it: features kept, metered usage
    refused (the middleware's 402 says why), served again once the pause ended (SQLite and
    PostgreSQL)."""
    cid = usage_db.customer("professional")
    svc = UsageService(usage_db.factory)
    now = dt.datetime.now(dt.UTC)
    pause = AccessPauseRecord(cid, "offer_1", "read_only", now, now + timedelta(days=60))
    with session_scope(usage_db.factory) as s:
        record_access_pause(s, pause)

    refused = svc.check({"customer_id": cid, "metric": "ai_requests", "quantity": 1}).as_dict()
    assert (refused["allowed"], refused["paused"]) == (False, True)
    assert "metered usage is not available" in refused["reason"]
    ent = svc.entitlements(cid)
    assert ent["paused"]["access"] == "read_only" and ent["features"]["api_access"] is True
    product = product_app(usage_app(usage_db.factory))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=product), base_url="http://p") as p:
        r = await p.post("/v1/generate", headers={"x-customer-id": cid})
        assert r.status_code == 402 and r.json()["error"] == "subscription_paused", r.text
        with session_scope(usage_db.factory) as s:
            record_access_pause(s, AccessPauseRecord(cid, "offer_1", "read_only", now, pause.resumes_at, ended=True))
        assert (await p.post("/v1/generate", headers={"x-customer-id": cid})).status_code == 200
