"""Body-size limits per route, enforced while the body is read and before it is parsed.

An ASGI middleware: a request whose ``Content-Length`` is over its route's limit is
answered 413 without reading a byte of it; a body without one (chunked) is counted as
it streams in, and reading stops at the first chunk past the limit (413). The usage
routes keep their own limit (``LIFECYCLE_USAGE_MAX_BATCH`` events, see
``starter/api/usage.py``), which they enforce the same way with their own error shape.

| route | setting | default |
|---|---|---|
| ``POST /webhooks/stripe`` | ``LIFECYCLE_STRIPE_WEBHOOK_MAX_BYTES`` | 1 MiB |
| ``POST /webhooks/sendgrid`` | ``LIFECYCLE_SENDGRID_WEBHOOK_MAX_BYTES`` | 4 MiB |
| ``/v1/usage``, ``/v1/usage/check`` | their own | |
| everything else | ``LIFECYCLE_MAX_BODY_BYTES`` | 64 KiB |
"""

from __future__ import annotations

import json

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lifecycle.settings import Settings

OWN_LIMIT = ("/v1/usage", "/v1/usage/check")


def limit_for(settings: Settings, path: str) -> int | None:
    """The most bytes a body to ``path`` may have; None where the route enforces its own."""
    if path in OWN_LIMIT:
        return None
    if path == "/webhooks/stripe":
        return settings.stripe_webhook_max_bytes
    if path == "/webhooks/sendgrid":
        return settings.sendgrid_webhook_max_bytes
    return settings.max_body_bytes


def too_large(limit: int, got: str) -> str:
    return f"body: {got}; this route takes at most {limit:,} bytes"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(self.settings, scope["path"])
        if limit is None:
            await self.app(scope, receive, send)
            return
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > limit:
            await _refuse(send, too_large(limit, f"{int(length):,} bytes"))
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI re-raises an HTTPException met while reading the body; a route
                    # reading it itself lets it reach the exception middleware: 413 either way.
                    raise HTTPException(413, too_large(limit, f"more than {limit:,} bytes"))
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except HTTPException as exc:  # raised outside any handler (e.g. by another middleware)
            if exc.status_code != 413 or started:
                raise
            await _refuse(send, str(exc.detail))


async def _refuse(send: Send, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({
        "type": "http.response.start",
        "status": 413,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    })
    await send({"type": "http.response.body", "body": body})
