"""A save offer's pause and the customer's access (policy ``save_offers.pause_access``,
default ``none``): while billing is paused the product's usage check refuses metered usage
with the reason, the entitlements say so, the product hears it (entitlements_changed),
and the resume restores all of it. Real workflows, activities and localstripe."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lifecycle.db import session_scope
from lifecycle.webhooks.endpoints import add_endpoint
from tests.support.retention import Retained
from tests.support.webhook_receiver import Receiver, receiving

pytestmark = pytest.mark.usefixtures("ts_env")


def _events(receiver: Receiver, cid: str) -> list[dict]:
    """What the product heard: entitlements changes for ``cid``."""
    return [e["data"] for e in receiver.accepted()
            if e["type"] == "customer.entitlements_changed" and e["data"].get("customer_id") == cid]


async def _check(ret: Retained, cid: str) -> dict:
    r = await ret.http.post("/v1/usage/check", json={"customer_id": cid, "metric": "ai_requests", "quantity": 1})
    assert r.status_code == 200, r.text
    return r.json()


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
