"""A real HTTP receiver for the product's webhooks (uvicorn, in this process, on a free port).

It answers from a script (e.g. 500, 500, then 200), verifies every request with the
``standardwebhooks`` package the way the product would, and records what it got, so tests
wait for what arrived (an asyncio condition), never for a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from starter.dev.localstripe import free_port


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    verified: bool
    event: dict[str, Any] | None  # the verified payload
    at: float = 0.0  # time.monotonic() on arrival

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    secrets: dict[str, str] = field(default_factory=dict)  # path -> whsec_…
    script: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses to answer first
    default: int = 200
    # per verified event: a status to answer instead of the script's (None: the script decides)
    rule: Callable[[dict[str, Any]], int | None] | None = None
    requests: list[Request] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    def url(self, path: str = "/hooks") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def accepted(self, path: str | None = None) -> list[dict[str, Any]]:
        """The verified events answered 2xx, in arrival order."""
        return [r.event for r in self.requests
                if r.event is not None and 200 <= r.answered < 300 and (path is None or r.path == path)]

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"]
        event, verified = None, False
        secret = self.secrets.get(path)
        if secret:
            try:
                event = Webhook(secret).verify(body, headers)
                verified = True
            except WebhookVerificationError:
                pass
        script = self.script.get(path) or []
        ruled = self.rule(event) if verified and event is not None and self.rule else None
        if not verified:
            status = 400
        elif ruled is not None:
            status = ruled
        else:
            status = script.pop(0) if script else self.default
        self.requests.append(Request(path, headers, body, status, verified, event, time.monotonic()))
        answer = json.dumps({"ok": 200 <= status < 300, "status": status}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})
        async with self._changed:
            self._changed.notify_all()

    async def until(self, predicate: Callable[[Receiver], bool], timeout: float = 30.0) -> None:
        """Wait until ``predicate(self)`` holds (re-checked on every request)."""
        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self))

        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"receiver: condition not met in {timeout}s; got {[(r.path, r.answered, r.webhook_id) for r in self.requests]}"
            ) from None

    async def start(self) -> None:
        config = uvicorn.Config(self, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._server = self._task = None


@contextlib.asynccontextmanager
async def receiving(**kwargs: Any) -> AsyncIterator[Receiver]:
    receiver = Receiver(**kwargs)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()
