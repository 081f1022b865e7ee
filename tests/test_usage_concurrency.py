"""Races on PostgreSQL through the real HTTP stack (uvicorn on a free port, concurrent
clients): thresholds fire once, a hard limit never admits more than the limit, and a
batch replayed concurrently counts once."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select

from lifecycle.models import UsageCounter, UsageEvent, UsageSignal
from lifecycle.usage import UsageService
from tests.support.usage import Db, serve, usage_app

pytestmark = pytest.mark.parametrize("usage_db", ["postgresql"], indirect=True)


def thresholds(db: Db, cid: str) -> list[tuple[str, int]]:
    with db.factory() as s:
        return sorted(s.execute(select(UsageSignal.metric, UsageSignal.threshold)
                                .where(UsageSignal.customer_id == cid)).all())


def used(db: Db, cid: str, metric: str = "ai_requests") -> tuple[Decimal, int, Decimal]:
    with db.factory() as s:
        counted = s.scalar(select(UsageCounter.used).where(UsageCounter.customer_id == cid,
                                                            UsageCounter.metric == metric))
        n, total = s.execute(select(func.count(), func.coalesce(func.sum(UsageEvent.quantity), 0))
                             .where(UsageEvent.customer_id == cid, UsageEvent.metric == metric)).one()
    return counted, n, Decimal(total)


async def test_racing_checks_cross_each_threshold_once_and_never_pass_a_hard_limit(usage_db: Db) -> None:
    cid = usage_db.customer("starter")  # ai_requests: 1,000, hard
    UsageService(usage_db.factory).ingest(
        [{"customer_id": cid, "metric": "ai_requests", "quantity": 1, "idempotency_key": f"pre{i}"}
         for i in range(790)])
    with serve(usage_app(usage_db.factory)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60,
                                     limits=httpx.Limits(max_connections=64)) as http:

            async def check(key: str) -> dict:
                r = await http.post("/v1/usage/check", json={
                    "customer_id": cid, "metric": "ai_requests", "quantity": 1, "idempotency_key": key})
                assert r.status_code == 200, r.text
                return r.json()

            first = await asyncio.gather(*(check(f"a{i}") for i in range(60)))
            assert all(r["allowed"] for r in first)
            assert thresholds(usage_db, cid) == [("ai_requests", 80)]

            second = await asyncio.gather(*(check(f"b{i}") for i in range(300)))
    allowed = sum(r["allowed"] for r in second)
    assert allowed == 150  # 850 + 150 = the limit, not one more
    assert all(r["remaining"] == 0 for r in second if not r["allowed"])
    assert thresholds(usage_db, cid) == [("ai_requests", 80), ("ai_requests", 100)]
    assert used(usage_db, cid) == (Decimal(1000), 1000, Decimal(1000))


async def test_concurrent_batches_over_a_soft_limit_signal_once(usage_db: Db) -> None:
    cid = usage_db.customer("starter")  # storage_gb: 5, soft
    batches = [[{"customer_id": cid, "metric": "storage_gb", "quantity": 0.05,
                 "idempotency_key": f"b{b}-{i}"} for i in range(10)] for b in range(16)]
    with serve(usage_app(usage_db.factory)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            rs = await asyncio.gather(*(http.post("/v1/usage", json={"events": b}) for b in batches))
    assert [r.status_code for r in rs] == [200] * 16
    assert sum(r.json()["accepted"] for r in rs) == 160
    assert thresholds(usage_db, cid) == [("storage_gb", 80), ("storage_gb", 100)]
    assert used(usage_db, cid, "storage_gb") == (Decimal(8), 160, Decimal(8))


async def test_a_batch_replayed_concurrently_counts_once(usage_db: Db) -> None:
    cid = usage_db.customer("enterprise")
    batch = [{"customer_id": cid, "metric": "ai_requests", "quantity": 2, "idempotency_key": f"k{i}"}
             for i in range(500)]
    with serve(usage_app(usage_db.factory)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            rs = await asyncio.gather(*(http.post("/v1/usage", json={"events": batch})
                                        for _ in range(8)))
    bodies = [r.json() for r in rs]
    assert sum(b["accepted"] for b in bodies) == 500
    assert sum(b["duplicates"] for b in bodies) == 500 * 7
    assert used(usage_db, cid) == (Decimal(1000), 500, Decimal(1000))
    assert UsageService(usage_db.factory).reconcile(customer_id=cid) == []
