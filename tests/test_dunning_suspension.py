"""A suspension by dunning, as the product sees it: the usage check (database only, so it
answers while Temporal is down), the entitlements and the middleware's 402, on SQLite and
PostgreSQL. The suspension is written as the dunning's activity writes it."""

from __future__ import annotations

import datetime as dt

import httpx

from lifecycle.billing.dunning import save_snapshot
from lifecycle.contracts.dunning import DunningInvoice, DunningSnapshot
from lifecycle.db import session_scope
from lifecycle.usage.service import UsageService
from tests.support.usage import Db, usage_app
from tests.test_usage_client import product_app


def suspend(db: Db, cid: str, *, suspended: bool) -> None:
    now = dt.datetime.now(dt.UTC)
    with session_scope(db.factory) as s:
        save_snapshot(s, DunningSnapshot(
            customer_id=cid, workflow_id=f"customer-{cid}/dunning/in_1",
            state="suspended" if suspended else "recovered", since=now, started_at=now - dt.timedelta(days=7),
            retry_mode="engine", suspended=suspended,
            invoices=[DunningInvoice("in_1", 4900, failed_at=now - dt.timedelta(days=7))],
            ended=not suspended,
        ))


async def test_a_suspended_customer_is_refused_with_the_reason_until_it_is_lifted(usage_db: Db) -> None:
    cid = usage_db.customer("professional")
    svc = UsageService(usage_db.factory)
    check = {"customer_id": cid, "metric": "ai_requests", "quantity": 1}
    assert svc.check(check).allowed is True

    suspend(usage_db, cid, suspended=True)
    refused = svc.check(check).as_dict()
    assert refused["allowed"] is False and refused["payment_overdue"] is True
    assert refused["reason"].startswith("payment is overdue since")
    ent = svc.entitlements(cid)
    assert ent["suspended"]["reason"] == refused["reason"]
    assert all(not m["allowed"] for m in ent["metrics"].values())

    product = product_app(usage_app(usage_db.factory))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=product), base_url="http://p") as p:
        r = await p.post("/v1/generate", headers={"x-customer-id": cid})
        assert r.status_code == 402
        assert r.json()["error"] == "payment_overdue" and "payment is overdue" in r.json()["reason"]

        suspend(usage_db, cid, suspended=False)  # recovered: the very next request is served
        assert (await p.post("/v1/generate", headers={"x-customer-id": cid})).status_code == 200
    assert svc.entitlements(cid)["suspended"] is None
