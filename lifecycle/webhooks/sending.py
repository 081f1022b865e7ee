"""One delivery on the wire: the Standard Webhooks headers (signed by the ``standardwebhooks``
package, never by hand), the POST with a timeout, and handing deliveries to the customer's
delivery workflow."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass

import httpx
from standardwebhooks import Webhook
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy

from lifecycle.contracts.ids import webhook_workflow_id
from lifecycle.contracts.search_attributes import CUSTOMER_ID
from lifecycle.contracts.webhooks import (
    DELIVER_SIGNAL,
    DELIVERY_WORKFLOW,
    DeliveryBatch,
    DeliveryRef,
    WebhookDeliveryInput,
    WebhookRetry,
)
from lifecycle.settings import Settings
from lifecycle.webhooks.addresses import (
    BadUrl,
    RefusedAddress,
    Resolver,
    Target,
    pinned_targets,
    system_resolve,
)
from lifecycle.webhooks.deliveries import RESPONSE_HEAD_CHARS, Attempt

USER_AGENT = "lifecycle-engine-webhooks/1"


def signed_headers(secret: str, event_id: str, body: str, at: dt.datetime) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` for ``body`` sent at ``at``."""
    timestamp = at.astimezone(dt.UTC)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, timestamp, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    latency_ms: int
    head: str | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


def delivery_client() -> httpx.AsyncClient:
    """The client deliveries go through: no redirects (a 3xx is an answer, never followed
    inside), and nothing from the environment (``trust_env=False``): an ``HTTP(S)_PROXY``
    would send the request to the proxy (past the address check, and breaking TLS against
    the pinned IP), a ``.netrc`` would add credentials."""
    return httpx.AsyncClient(follow_redirects=False, trust_env=False)


async def post(
    http: httpx.AsyncClient, attempt: Attempt, timeout: float, *, allow_private: bool = False,
    resolve: Resolver = system_resolve,
) -> Answer:
    """POST the delivery to the addresses its name resolves to now, checked
    (``lifecycle.webhooks.addresses``), in order until one takes the connection; the
    lookup, the connections and the answer take ``timeout`` seconds at most together.
    Never raises for the receiver's failures (they are in the answer). A refused address
    or a bad URL is an error without a status or a body."""
    headers = signed_headers(attempt.secret, attempt.event_id, attempt.body, dt.datetime.now(dt.UTC))
    started = time.monotonic()

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        targets = await pinned_targets(attempt.url, allow_private=allow_private, timeout=timeout, resolve=resolve)
    except (RefusedAddress, BadUrl) as exc:
        return Answer(None, elapsed_ms(), None, f"refused: {exc}"[:500])
    try:
        async with asyncio.timeout(max(timeout - (time.monotonic() - started), 0.001)):
            r = await _first_connected(http, targets, attempt.body.encode(), headers, started + timeout)
    except TimeoutError:
        return Answer(None, elapsed_ms(), None, f"timed out after {timeout:g} s")
    except httpx.HTTPError as exc:
        return Answer(None, elapsed_ms(), None, f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__)
    head = r.text[:RESPONSE_HEAD_CHARS]
    error = None if 200 <= r.status_code < 300 else f"HTTP {r.status_code}"
    return Answer(r.status_code, elapsed_ms(), head, error)


async def _first_connected(
    http: httpx.AsyncClient, targets: list[Target], body: bytes, headers: dict[str, str], deadline: float
) -> httpx.Response:
    """The answer of the first target that accepts a connection (a refused or timed-out
    connection sent nothing: the next address is tried, each with its share of the time
    left to connect); the last error if none does."""
    for i, target in enumerate(targets):
        left = max(deadline - time.monotonic(), 0.001)
        extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else None
        try:
            return await http.post(target.url, content=body, headers={**headers, "host": target.host_header},
                                   timeout=httpx.Timeout(left, connect=left / (len(targets) - i)),
                                   extensions=extensions)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            if i == len(targets) - 1:
                raise
    raise AssertionError("pinned_targets returns at least one target")


def retry_of(settings: Settings) -> WebhookRetry:
    return WebhookRetry(
        initial_seconds=settings.webhook_retry_initial_seconds,
        maximum_seconds=settings.webhook_retry_max_seconds,
        window_seconds=settings.webhook_retry_window_seconds,
        attempt_seconds=settings.webhook_timeout_seconds + 5.0,  # a killed worker's attempt is retried after this
    )


async def hand_over(
    client: Client, task_queue: str, customer_id: str, refs: list[DeliveryRef], retry: WebhookRetry
) -> None:
    """Signal-with-start ``customer-{id}/webhooks``: the deliveries join its queue, in order."""
    await client.start_workflow(
        DELIVERY_WORKFLOW,
        WebhookDeliveryInput(customer_id=customer_id, retry=retry),
        id=webhook_workflow_id(customer_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal=DELIVER_SIGNAL,
        start_signal_args=[DeliveryBatch(refs)],
        search_attributes=TypedSearchAttributes([SearchAttributePair(CUSTOMER_ID, customer_id)]),
    )
