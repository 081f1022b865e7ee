"""A small client for the usage API, and an ASGI middleware a FastAPI/Starlette product drops in.

Client::

    from lifecycle_client.usage import UsageClient
    usage = UsageClient("https://lifecycle.example.com", api_key="...")
    answer = usage.check("cus_42", "ai_requests")          # allowed? and records it
    if not answer.allowed: ...                               # answer.remaining, answer.limit
    usage.record([{"customer_id": "cus_42", "metric": "storage_gb", "quantity": 0.5,
                   "idempotency_key": "upload-981"}])        # batches of up to 1,000
    usage.entitlements("cus_42")["features"]["api_access"]

Middleware (check-and-record before serving a metered route)::

    from lifecycle_client.usage import AsyncUsageClient, MeteredRoute, UsageMiddleware
    app.add_middleware(
        UsageMiddleware,
        client=AsyncUsageClient("https://lifecycle.example.com", api_key="..."),
        routes=[MeteredRoute("/v1/generate", metric="ai_requests"),
                MeteredRoute("/v1/sso", feature="sso")],
    )

A refused request gets 429 (a hard usage limit is used up; ``Retry-After`` says when the
period starts afresh) or 402 (the feature is not in the customer's plan, or the payment is
overdue and dunning suspended the customer's access: ``payment_overdue``; the customer
paused the subscription and the pause leaves no metered usage: ``subscription_paused``), with a JSON
body naming the metric or feature, the limit, what is used and remaining, and the next
plan up. Served requests carry ``X-Usage-Limit``, ``X-Usage-Remaining`` and
``X-Usage-Overage`` headers. The customer is read from the ``X-Customer-Id`` header
unless you pass ``customer_id=`` (a function of the ASGI scope). A retry of the same
request with the same ``Idempotency-Key`` header is counted once.

This module only needs httpx; it imports nothing else from the engine.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

CUSTOMER_HEADER = "x-customer-id"


class UsageApiError(Exception):
    """The usage API refused a call: ``status``, and the ``field`` and ``reason`` it named."""

    def __init__(self, status: int, field: str | None, reason: str, body: Any = None) -> None:
        super().__init__(f"{status}: {field + ': ' if field else ''}{reason}")
        self.status = status
        self.field = field
        self.reason = reason
        self.body = body


@dataclass
class CheckAnswer:
    allowed: bool
    metric: str
    used: float
    limit: float | None
    remaining: float | None
    limit_kind: str | None
    overage: float = 0
    period_end: str | None = None
    reason: str | None = None
    duplicate: bool = False
    raw: dict[str, Any] = field(default_factory=dict)
    payment_overdue: bool = False  # refused because dunning suspended the customer's access
    paused: bool = False  # refused because the customer's subscription is paused (a save offer)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> CheckAnswer:
        return cls(
            allowed=bool(body["allowed"]), metric=body["metric"], used=body["used"],
            limit=body.get("limit"), remaining=body.get("remaining"),
            limit_kind=body.get("limit_kind"), overage=body.get("overage") or 0,
            period_end=body.get("period_end"), reason=body.get("reason"),
            duplicate=bool(body.get("duplicate")), raw=body,
            payment_overdue=bool(body.get("payment_overdue")),
            paused=bool(body.get("paused")),
        )


def _check_body(customer_id: str, metric: str, quantity: float, idempotency_key: str | None,
                timestamp: dt.datetime | None) -> dict[str, Any]:
    body: dict[str, Any] = {"customer_id": customer_id, "metric": metric, "quantity": quantity}
    if idempotency_key:
        body["idempotency_key"] = idempotency_key
    if timestamp is not None:
        body["timestamp"] = timestamp.isoformat()
    return body


def _result(response: httpx.Response, ok: tuple[int, ...] = (200, 201)) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code in ok:
        return body
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        raise UsageApiError(response.status_code, detail.get("field"), str(detail.get("reason")), body)
    if isinstance(body, dict) and "results" in body:  # a batch where every event was rejected
        raise UsageApiError(response.status_code, "events", "every event was rejected", body)
    raise UsageApiError(response.status_code, None, str(detail or response.text[:200]), body)


def _headers(api_key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"} if api_key else {}


class UsageClient:
    """Blocking client (scripts, workers, WSGI apps)."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 5.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=base_url, headers=_headers(api_key), timeout=timeout,
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> UsageClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check(self, customer_id: str, metric: str, quantity: float = 1, *,
              idempotency_key: str | None = None, timestamp: dt.datetime | None = None) -> CheckAnswer:
        r = self._http.post("/v1/usage/check",
                            json=_check_body(customer_id, metric, quantity, idempotency_key, timestamp))
        return CheckAnswer.from_json(_result(r))

    def record(self, events: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Record a batch; returns the per-event results (accepted / duplicate / rejected)."""
        return _result(self._http.post("/v1/usage", json={"events": list(events)}))

    def entitlements(self, customer_id: str) -> dict[str, Any]:
        return _result(self._http.get(f"/v1/customers/{customer_id}/entitlements"))


class AsyncUsageClient:
    """asyncio client (what the middleware uses)."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, headers=_headers(api_key),
                                       timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def check(self, customer_id: str, metric: str, quantity: float = 1, *,
                    idempotency_key: str | None = None,
                    timestamp: dt.datetime | None = None) -> CheckAnswer:
        r = await self._http.post(
            "/v1/usage/check", json=_check_body(customer_id, metric, quantity, idempotency_key, timestamp))
        return CheckAnswer.from_json(_result(r))

    async def record(self, events: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return _result(await self._http.post("/v1/usage", json={"events": list(events)}))

    async def entitlements(self, customer_id: str) -> dict[str, Any]:
        return _result(await self._http.get(f"/v1/customers/{customer_id}/entitlements"))


# --- the middleware ---------------------------------------------------------------------


@dataclass(frozen=True)
class MeteredRoute:
    """Requests whose path starts with ``path`` (and, if given, use one of ``methods``) are
    metered: ``metric`` x ``quantity`` per request, and/or need ``feature`` on the plan."""

    path: str
    metric: str | None = None
    quantity: float = 1
    feature: str | None = None
    methods: tuple[str, ...] | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method.upper() not in self.methods:
            return False
        return path == self.path or path.startswith(self.path.rstrip("/") + "/")


Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", []):
        if k == name:
            return v.decode("latin-1")
    return None


def header_customer(name: str = CUSTOMER_HEADER) -> Callable[[Scope], str | None]:
    key = name.lower().encode()
    return lambda scope: _header(scope, key) or None


class UsageMiddleware:
    """Check-and-record before serving a metered route; refuse with 429/402 and the quota."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        client: AsyncUsageClient,
        routes: Sequence[MeteredRoute],
        customer_id: Callable[[Scope], str | None] | None = None,
        fail_open: bool = False,
        entitlements_ttl: float = 30.0,
    ) -> None:
        self.app = app
        self.client = client
        self.routes = list(routes)
        self.customer_id = customer_id or header_customer()
        self.fail_open = fail_open
        self.ttl = entitlements_ttl
        self._entitlements: dict[str, tuple[float, dict[str, Any]]] = {}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = next((r for r in self.routes if r.matches(scope["method"], scope["path"])), None)
        if route is None:
            await self.app(scope, receive, send)
            return
        cid = self.customer_id(scope)
        if not cid:
            await _respond(send, 401, {"error": "unknown_customer",
                                       "reason": "no customer id on this request "
                                                 f"(send the {CUSTOMER_HEADER} header)"})
            return
        extra: list[tuple[bytes, bytes]] = []
        try:
            if route.feature:
                ent = await self._cached_entitlements(cid)
                paused = ent.get("paused") or {}
                if paused and not ent.get("features", {}).get(route.feature):
                    await _respond(send, 402, {
                        "error": "subscription_paused", "feature": route.feature, "reason": paused.get("reason"),
                    })
                    return
                if not ent.get("features", {}).get(route.feature):
                    await _respond(send, 402, {
                        "error": "feature_not_in_plan", "feature": route.feature,
                        "plan": (ent.get("plan") or {}).get("name"),
                        "upgrade": _upgrade_to(ent, route.feature),
                        "reason": f"{route.feature.replace('_', ' ')} is not included in the "
                                  f"{(ent.get('plan') or {}).get('name', 'current')} plan",
                    })
                    return
            if route.metric:
                key = _header(scope, b"idempotency-key")
                key = f"{scope['method']}:{scope['path']}:{key}" if key else f"mw:{uuid.uuid4().hex}"
                answer = await self.client.check(cid, route.metric, route.quantity, idempotency_key=key)
                if answer.payment_overdue or answer.paused:
                    await _respond(send, 402, {
                        "error": "payment_overdue" if answer.payment_overdue else "subscription_paused",
                        "metric": answer.metric, "reason": answer.reason,
                    })
                    return
                if not answer.allowed:
                    await _respond(send, 429, {
                        "error": "usage_limit_reached", "metric": answer.metric,
                        "limit": answer.limit, "used": answer.used, "remaining": answer.remaining,
                        "period_end": answer.period_end, "reason": answer.reason,
                    }, _quota_headers(answer) + _retry_after(answer.period_end))
                    return
                extra = _quota_headers(answer)
        except (httpx.HTTPError, UsageApiError) as exc:
            if isinstance(exc, UsageApiError) and exc.status == 404:
                await _respond(send, 401, {"error": "unknown_customer", "reason": exc.reason})
                return
            if not self.fail_open:
                await _respond(send, 503, {"error": "usage_service_unavailable",
                                           "reason": f"could not check usage: {exc}"})
                return
            extra = []  # fail open: serve without quota headers

        async def send_with_quota(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and extra:
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_quota)

    async def _cached_entitlements(self, cid: str) -> dict[str, Any]:
        hit = self._entitlements.get(cid)
        now = time.monotonic()
        if hit and now - hit[0] < self.ttl:
            return hit[1]
        ent = await self.client.entitlements(cid)
        self._entitlements[cid] = (now, ent)
        return ent


def _upgrade_to(ent: dict[str, Any], feature: str) -> dict[str, Any] | None:
    """The cheapest plan that includes ``feature`` (from the entitlements answer)."""
    return (ent.get("feature_upgrades") or {}).get(feature)


def _quota_headers(a: CheckAnswer) -> list[tuple[bytes, bytes]]:
    out = []
    if a.limit is not None:
        out.append((b"x-usage-limit", str(a.limit).encode()))
    if a.remaining is not None:
        out.append((b"x-usage-remaining", str(a.remaining).encode()))
    out.append((b"x-usage-overage", str(a.overage).encode()))
    return out


def _retry_after(period_end: str | None) -> list[tuple[bytes, bytes]]:
    if not period_end:
        return []
    try:
        end = dt.datetime.fromisoformat(period_end)
    except ValueError:
        return []
    seconds = max(int((end - dt.datetime.now(dt.UTC)).total_seconds()), 1)
    return [(b"retry-after", str(seconds).encode())]


async def _respond(send: Any, status: int, body: dict[str, Any],
                   headers: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": payload})
