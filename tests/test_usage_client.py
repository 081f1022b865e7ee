"""The Python client and the drop-in ASGI middleware, against the real usage API."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from lifecycle_client.usage import (
    AsyncUsageClient,
    MeteredRoute,
    UsageApiError,
    UsageClient,
    UsageMiddleware,
)
from tests.conftest import free_port
from tests.support.usage import Db, serve, usage_app


def product_app(engine_app: FastAPI, *, fail_open: bool = False, base_url: str = "http://engine") -> FastAPI:
    """A customer's product with metered routes, wired to the engine's usage API in-process."""
    product = FastAPI()

    @product.post("/v1/generate")
    async def generate() -> dict[str, str]:
        return {"text": "hello"}

    @product.get("/v1/sso/config")
    async def sso() -> dict[str, bool]:
        return {"sso": True}

    @product.get("/health")
    async def health() -> dict[str, str]:
        return {"ok": "yes"}

    product.add_middleware(
        UsageMiddleware,
        client=AsyncUsageClient(base_url, api_key="k",
                                transport=httpx.ASGITransport(app=engine_app)),
        routes=[MeteredRoute("/v1/generate", metric="ai_requests", quantity=250, methods=("POST",)),
                MeteredRoute("/v1/sso", feature="sso")],
        fail_open=fail_open,
    )
    return product


async def test_middleware_meters_refuses_at_the_hard_limit_and_gates_features(usage_db: Db) -> None:
    cid = usage_db.customer("starter")  # 1,000 requests, hard; no SSO
    product = product_app(usage_app(usage_db.factory))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=product), base_url="http://p") as p:
        assert (await p.get("/health")).status_code == 200  # not metered, no customer needed
        assert (await p.post("/v1/generate")).status_code == 401  # metered, no customer
        h = {"x-customer-id": cid}
        remaining = []
        for _ in range(4):
            r = await p.post("/v1/generate", headers=h)
            assert r.status_code == 200 and r.json() == {"text": "hello"}
            remaining.append(r.headers["x-usage-remaining"])
        assert remaining == ["750", "500", "250", "0"]
        refused = await p.post("/v1/generate", headers=h)
        assert refused.status_code == 429
        body = refused.json()
        assert (body["error"], body["metric"], body["limit"], body["remaining"]) == (
            "usage_limit_reached", "ai_requests", 1000, 0)
        assert int(refused.headers["retry-after"]) > 0
        # a retry carrying the same Idempotency-Key is counted once
        other = usage_db.customer("starter")
        for _ in range(3):
            r = await p.post("/v1/generate", headers={"x-customer-id": other, "idempotency-key": "req-1"})
            assert r.headers["x-usage-remaining"] == "750"
        sso = await p.get("/v1/sso/config", headers=h)
        assert sso.status_code == 402
        assert sso.json()["upgrade"]["name"] == "Enterprise"
        assert (await p.get("/v1/sso/config", headers={"x-customer-id": "nobody"})).status_code == 401


async def test_middleware_when_the_engine_is_down(usage_db: Db) -> None:
    cid = usage_db.customer("starter")
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for fail_open, status in ((False, 503), (True, 200)):
        product = FastAPI()

        @product.post("/v1/generate")
        async def generate() -> dict[str, str]:
            return {"text": "hello"}

        product.add_middleware(UsageMiddleware, client=AsyncUsageClient(dead, timeout=1),
                               routes=[MeteredRoute("/v1/generate", metric="ai_requests")],
                               fail_open=fail_open)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=product), base_url="http://p") as p:
            r = await p.post("/v1/generate", headers={"x-customer-id": cid})
            assert r.status_code == status


def test_blocking_client_over_loopback(usage_db: Db) -> None:
    cid = usage_db.customer("professional")
    with serve(usage_app(usage_db.factory)) as url, UsageClient(url, api_key="k") as client:
        res = client.record([{"customer_id": cid, "metric": "ai_requests", "quantity": 5,
                              "idempotency_key": f"k{i}"} for i in range(3)])
        assert (res["accepted"], res["duplicates"]) == (3, 0)
        answer = client.check(cid, "ai_requests", 10)
        assert answer.allowed and answer.used == 25 and answer.remaining == 9975
        assert client.entitlements(cid)["features"]["api_access"] is True
        with pytest.raises(UsageApiError) as err:
            client.check(cid, "ai_requests", -1)
        assert (err.value.status, err.value.field) == (422, "quantity")
        with pytest.raises(UsageApiError) as err:
            client.entitlements("nobody")
        assert err.value.status == 404
