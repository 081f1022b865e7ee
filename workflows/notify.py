"""Telling the product: one call any workflow makes to publish a webhook event.

    await publish(customer_id, "dunning.state_changed", {"state": "grace"}, key=f"dunning:{step}")

The event's id (the receiver's ``webhook-id``) is derived from this workflow's id and
``key``, so a replayed or retried step publishes the same event, once. The ``publish_webhook``
activity records it for every endpoint that takes its type and hands it to the customer's
delivery workflow (``customer-{id}/webhooks``); with no such endpoint it stores nothing.
Publishing never fails the caller's workflow: the activity is retried until the database
takes it, like the timeline's.

Calling it adds an activity to the caller's history: in an existing workflow, put the call
behind ``workflow.patched`` (see workflows/patches.py).
"""

import hashlib
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.webhooks import WebhookActivities
    from lifecycle.contracts.webhooks import WEBHOOK_EVENT_TYPES, WebhookEvent
    from workflows.options import STORE_RETRY, STORE_TIMEOUT


def event_id(key: str) -> str:
    """``evt_`` and a digest of this workflow's id and ``key``: stable across replays and retries."""
    digest = hashlib.sha256(f"{workflow.info().workflow_id}:{key}".encode()).hexdigest()[:32]
    return f"evt_{digest}"


async def publish(customer_id: str, type: str, data: dict[str, Any], *, key: str) -> None:
    """Publish ``type`` (one of WEBHOOK_EVENT_TYPES) with ``data`` for the customer's endpoints."""
    if type not in WEBHOOK_EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {type!r}")
    await workflow.execute_activity_method(
        WebhookActivities.publish_webhook,
        WebhookEvent(
            event_id=event_id(key), customer_id=customer_id, type=type,
            occurred_at=workflow.now(), data=data,
        ),
        start_to_close_timeout=STORE_TIMEOUT,
        retry_policy=STORE_RETRY,
    )
