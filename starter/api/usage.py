"""Usage HTTP API: ingestion, check-and-record, entitlements.

- ``POST /v1/usage``: one event (a JSON object) or a batch ``{"events": [...]}`` of up to
  ``LIFECYCLE_USAGE_MAX_BATCH`` events. Each event is accepted, duplicate (its
  idempotency key was seen before) or rejected with the field and the reason; a bad
  event never sinks the good ones. A single bad event answers 4xx; a batch answers 200
  with per-event results, or 422 when every event was rejected.
- ``POST /v1/usage/check``: may this customer use ``quantity`` of ``metric`` now? Answers
  ``allowed`` with the remaining quota and records the usage when allowed.
- ``GET /v1/customers/{id}/entitlements``: plan, features, limits, used and remaining.

The app's lifespan keeps ``settings``, ``session_factory`` and ``temporal`` (the client,
or None) on ``app.state``; this router's own lifespan, which runs inside it, puts the
``UsageService`` there and runs the loop that re-sends threshold signals Temporal did
not take. Bearer auth is the app's dependency, added at include time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, BackgroundTasks, FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from lifecycle.text import json_safe
from lifecycle.usage import Crossing, UsageError, UsageService
from starter.api import usage_docs as docs
from starter.api.fields import CustomerIdPath
from starter.signals.usage import deliver, resend_loop

BYTES_PER_EVENT = 4096  # generous upper bound of one event's JSON


def _service(app: Any) -> UsageService:
    return app.state.usage_service


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs inside the app's lifespan, which has put ``settings`` and ``session_factory`` on
    ``app.state``: builds the service once and starts the outbox re-send loop."""
    settings = app.state.settings
    service = app.state.usage_service = UsageService.from_settings(app.state.session_factory, settings)
    interval = settings.usage_resend_interval_seconds
    task = None
    if interval > 0:
        task = asyncio.create_task(
            resend_loop(lambda: getattr(app.state, "temporal", None), service, interval),
            name="usage-signal-resend",
        )
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


router = APIRouter(prefix="/v1", tags=["usage"], lifespan=_lifespan)


def _json(body: Any, status: int = 200) -> Response:
    try:
        content = orjson.dumps(body)
    except orjson.JSONEncodeError:  # a lone surrogate echoed back from a rejected event
        content = orjson.dumps(json_safe(body))
    return Response(content, status_code=status, media_type="application/json")


def _error(status: int, field: str, reason: str, **extra: Any) -> Response:
    return _json({"detail": {"field": field, "reason": reason, **extra}}, status)


async def _read_json(request: Request, max_bytes: int) -> Any:
    """The body as JSON, or a UsageError naming what is wrong with it."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise UsageError("body", f"{int(length):,} bytes; at most {max_bytes:,}", status=413)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise UsageError("body", f"more than {max_bytes:,} bytes", status=413)
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        raise UsageError("body", "empty; expected a JSON object", status=400)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UsageError("body", f"malformed JSON: {exc}", status=400) from None


def _signal_later(request: Request, background: BackgroundTasks, crossings: list[Crossing]) -> None:
    if crossings:
        background.add_task(deliver, getattr(request.app.state, "temporal", None),
                            _service(request.app), crossings)


@router.post("/usage", **docs.POST_USAGE)
async def post_usage(request: Request, background: BackgroundTasks) -> Response:
    svc = _service(request.app)
    try:
        payload = await _read_json(request, max(svc.max_batch * BYTES_PER_EVENT, 65536))
        if isinstance(payload, dict) and "events" in payload:
            events = payload["events"]
            if not isinstance(events, list):
                raise UsageError("events", f"expected a list of events, got {type(events).__name__}")
            if not events:
                raise UsageError("events", "empty; send at least one event")
            batch = True
        elif isinstance(payload, dict):
            events, batch = [payload], False
        else:
            raise UsageError("body", "expected a JSON object: one event, or {\"events\": [...]}")
        result = await run_in_threadpool(svc.ingest, events)
    except UsageError as err:
        return _error(err.status, err.field, err.reason)
    _signal_later(request, background, result.crossings)
    if not batch:
        r = result.results[0]
        if r.status == "rejected":
            return _error(result.http_status.get(0, 422), r.field or "event", r.reason or "rejected",
                          idempotency_key=r.idempotency_key)
        return _json(r.as_dict(), 201 if r.status == "accepted" else 200)
    body = result.as_dict()
    return _json(body, 422 if body["rejected"] == len(events) else 200)


@router.post("/usage/check", **docs.CHECK_USAGE)
async def check_usage(request: Request, background: BackgroundTasks) -> Response:
    svc = _service(request.app)
    try:
        payload = await _read_json(request, 65536)
        result = await run_in_threadpool(svc.check, payload)
    except UsageError as err:
        return _error(err.status, err.field, err.reason)
    _signal_later(request, background, result.crossings)
    return _json(result.as_dict())


@router.get("/customers/{customer_id}/entitlements", **docs.ENTITLEMENTS)
async def entitlements(customer_id: CustomerIdPath, request: Request) -> Response:
    svc = _service(request.app)
    try:
        body = await run_in_threadpool(svc.entitlements, customer_id, now=dt.datetime.now(dt.UTC))
    except UsageError as err:
        return _error(err.status, err.field, err.reason)
    return _json(body)
