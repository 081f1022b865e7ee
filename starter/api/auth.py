"""Bearer-key authentication of every ``/v1`` request, before anything reads its body.

The key found is put on the request's state (``request.state.api_key``: its name and
scopes); each router's dependency checks its scope (403 without it).

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

from lifecycle.api_keys import ApiKey
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


def resolve(token: bytes, grants: Iterable[ApiKey]) -> ApiKey | None:
    """The configured key the token is (compared in constant time against every key)."""
    found = None
    for grant in grants:
        if secrets.compare_digest(token, key_bytes(grant.key)):
            found = grant
    return found


def forbidden(grant: ApiKey, scope: str) -> str:
    return f"API key {grant.name!r} lacks the {scope!r} scope (LIFECYCLE_API_KEYS: name:key:scope,...)"


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
        token = bearer_token(header)
        grant = resolve(token, self.settings.api_key_grants) if token is not None else None
        if grant is not None:
            # who is asking, for the routes' scope checks and the audit trail
            scope.setdefault("state", {})["api_key"] = grant
            await self.app(scope, receive, send)
            return
        reason = MISSING if token is None else UNKNOWN
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
