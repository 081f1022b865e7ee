"""One delivery on the wire: the Standard Webhooks headers (signed by the ``standardwebhooks``
package, never by hand), the POST with a timeout, and handing deliveries to the customer's
delivery workflow."""

from __future__ import annotations

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
from lifecycle.webhooks.addresses import RefusedAddress, Resolver, pinned_target, system_resolve
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


async def post(
    http: httpx.AsyncClient, attempt: Attempt, timeout: float, *, allow_private: bool = False,
    resolve: Resolver = system_resolve,
) -> Answer:
    """POST the delivery to the address its name resolves to now, checked
    (``lifecycle.webhooks.addresses``); never raises for the receiver's failures (they are
    in the answer). A refused address is an error without a status or a body."""
    headers = signed_headers(attempt.secret, attempt.event_id, attempt.body, dt.datetime.now(dt.UTC))
    started = time.monotonic()
    try:
        target = await pinned_target(attempt.url, allow_private=allow_private, resolve=resolve)
    except RefusedAddress as exc:
        return Answer(None, int((time.monotonic() - started) * 1000), None, f"refused: {exc}"[:500])
    headers["host"] = target.host_header
    extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else None
    try:
        r = await http.post(target.url, content=attempt.body.encode(), headers=headers, timeout=timeout,
                            extensions=extensions)
    except httpx.HTTPError as exc:
        ms = int((time.monotonic() - started) * 1000)
        return Answer(None, ms, None, f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__)
    ms = int((time.monotonic() - started) * 1000)
    head = r.text[:RESPONSE_HEAD_CHARS]
    error = None if 200 <= r.status_code < 300 else f"HTTP {r.status_code}"
    return Answer(r.status_code, ms, head, error)


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
