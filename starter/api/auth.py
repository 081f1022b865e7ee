"""Bearer-key authentication of every ``/v1`` request, before anything reads its body.

An ASGI middleware rather than only a FastAPI dependency: FastAPI parses a JSON body
before it runs the dependencies, so a malformed body used to be answered 422 to a caller
without a key. Here the key is checked on the header's raw bytes, so any byte sequence
(``Bearer kéy``, invalid UTF-8) is a plain 401 rather than a TypeError from
``secrets.compare_digest`` on non-ASCII text.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from lifecycle.settings import Settings

MISSING = "missing bearer API key: send 'Authorization: Bearer <key>' with a key from LIFECYCLE_API_KEYS"
UNKNOWN = "unknown API key"
PROTECTED_PREFIX = "/v1/"


def key_bytes(key: str) -> bytes:
    """A configured key as the bytes a client sends for it (UTF-8, as curl and httpx do)."""
    return key.encode("utf-8", "surrogateescape")


def bearer_token(header: bytes | None) -> bytes | None:
    """The token of ``Bearer <token>`` (scheme case-insensitive), or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(b" ")
    token = token.strip()
    if scheme.lower() != b"bearer" or not token:
        return None
    return token


def key_matches(token: bytes, keys: Iterable[str]) -> bool:
    """Constant-time comparison against every configured key (bytes, never text)."""
    ok = False
    for key in keys:
        ok |= secrets.compare_digest(token, key_bytes(key))
    return ok


def check(header: bytes | None, keys: Iterable[str]) -> str | None:
    """None when the header carries a valid key, else the reason for the 401."""
    token = bearer_token(header)
    if token is None:
        return MISSING
    if not key_matches(token, keys):
        return UNKNOWN
    return None


class APIKeyMiddleware:
    """401 for a ``/v1`` request without a valid key, before the app (or its body parser)
    runs."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (scope["path"] + "/").startswith(PROTECTED_PREFIX):
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        reason = check(header, self.settings.api_keys)
        if reason is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"detail": reason}).encode()
        await send({
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b"Bearer"),
            ],
        })
        await send({"type": "http.response.body", "body": body})
