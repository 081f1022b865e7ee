"""The delivery log: an event published once, one delivery per subscribed endpoint, each
attempt's answer (status code, latency, the response's first bytes, the error).

Every function takes a session and leaves the commit to the caller; none does network I/O
(the activity posts between two short transactions).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lifecycle.contracts.webhooks import DeliveryRef, WebhookEvent
from lifecycle.db import insert_ignore
from lifecycle.models import WebhookDelivery, WebhookEndpoint, WebhookEventRow
from lifecycle.webhooks.endpoints import subscribers

PENDING, DELIVERED, FAILED, SKIPPED = "pending", "delivered", "failed", "skipped"
RESPONSE_HEAD_CHARS = 256


class UnknownDelivery(LookupError):
    pass


class CannotRedeliver(ValueError):
    pass


def record_event(session: Session, event: WebhookEvent) -> list[DeliveryRef]:
    """Record ``event`` and a delivery to each enabled endpoint that takes its type, once
    (a retried publish adds nothing). Returns the event's deliveries still pending, in
    endpoint order; none when no endpoint takes it (then nothing is stored)."""
    endpoints = subscribers(session, event.type)
    if not endpoints:
        return []
    insert_ignore(session, WebhookEventRow, dict(
        event_id=event.event_id, customer_id=event.customer_id, type=event.type,
        occurred_at=event.occurred_at, data=event.data, created_at=dt.datetime.now(dt.UTC),
    ), on=("event_id",))
    for endpoint in endpoints:
        insert_ignore(session, WebhookDelivery, dict(
            key=f"{event.event_id}:{endpoint.id}", event_id=event.event_id, endpoint_id=endpoint.id,
            customer_id=event.customer_id, type=event.type, status=PENDING, attempts=0,
            created_at=dt.datetime.now(dt.UTC),
        ), on=("key",))
    rows = session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.event_id == event.event_id, WebhookDelivery.status == PENDING,
               WebhookDelivery.redelivery_of.is_(None))
        .order_by(WebhookDelivery.id)
    )
    return [DeliveryRef(r.id, r.endpoint_id) for r in rows]


def body_of(event: WebhookEventRow) -> str:
    """The JSON body the product receives (Standard Webhooks' shape: type, timestamp, data)."""
    return json.dumps(
        {
            "id": event.event_id,
            "type": event.type,
            "timestamp": event.occurred_at.isoformat(),
            "data": {"customer_id": event.customer_id, **event.data},
        },
        separators=(",", ":"),
        sort_keys=True,
    )


@dataclass(frozen=True)
class Attempt:
    """What one delivery needs, read before the network call."""

    delivery_id: int
    event_id: str
    url: str
    secret: str
    body: str


def prepare(session: Session, delivery_id: int) -> Attempt | str:
    """The attempt to make, or why none is made (the delivery is then closed as skipped,
    unless it was delivered already)."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        return "no such delivery"
    if delivery.status == DELIVERED:
        return "already delivered"
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    event = session.scalars(select(WebhookEventRow).where(WebhookEventRow.event_id == delivery.event_id)).first()
    why = None
    if endpoint is None or endpoint.removed_at is not None:
        why = "endpoint removed"
    elif endpoint.disabled_at is not None:
        why = "endpoint disabled"
    elif event is None:
        why = "event not recorded"
    if why is not None or endpoint is None or event is None:
        delivery.status, delivery.error = SKIPPED, why
        return why or "skipped"
    return Attempt(delivery.id, event.event_id, endpoint.url, endpoint.secret, body_of(event))


def record_attempt(
    session: Session,
    delivery_id: int,
    *,
    attempt: int,
    status_code: int | None,
    latency_ms: int,
    response_head: str | None,
    error: str | None,
) -> None:
    """One attempt's answer; a 2xx delivers the delivery."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.status == DELIVERED:
        return
    now = dt.datetime.now(dt.UTC)
    delivery.attempts = max(delivery.attempts, attempt)
    delivery.status_code = status_code
    delivery.latency_ms = latency_ms
    delivery.response_head = response_head[:RESPONSE_HEAD_CHARS] if response_head is not None else None
    delivery.error = error
    delivery.last_attempt_at = now
    if error is None and status_code is not None and 200 <= status_code < 300:
        delivery.status = DELIVERED
        delivery.delivered_at = now


def give_up(session: Session, delivery_id: int, error: str, window_seconds: float) -> WebhookEndpoint | None:
    """The delivery failed for the whole retry window: it is failed and its endpoint disabled
    (returned; None if it was removed meanwhile)."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        return None
    delivery.status = FAILED
    delivery.error = error
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    if endpoint is None or endpoint.removed_at is not None:
        return None
    if endpoint.disabled_at is None:
        endpoint.disabled_at = dt.datetime.now(dt.UTC)
        endpoint.disabled_reason = (
            f"delivery {delivery_id} failed for {window_seconds / 3600:g} hours: {error}"
        )[:2000]
    return endpoint


def redelivery(session: Session, delivery_id: int) -> DeliveryRef:
    """A new delivery of the same event (same ``webhook-id``) to the same endpoint."""
    original = session.get(WebhookDelivery, delivery_id)
    if original is None:
        raise UnknownDelivery(f"unknown delivery {delivery_id}")
    endpoint = session.get(WebhookEndpoint, original.endpoint_id)
    if endpoint is None or endpoint.removed_at is not None:
        raise CannotRedeliver(f"endpoint {original.endpoint_id} was removed")
    if endpoint.disabled_at is not None:
        raise CannotRedeliver(
            f"endpoint {endpoint.id} is disabled ({endpoint.disabled_reason}); "
            f"enable it first: lifecycle webhooks enable {endpoint.id}"
        )
    count = session.scalar(
        select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.event_id == original.event_id,
                                                                 WebhookDelivery.endpoint_id == original.endpoint_id)
    ) or 0
    row = WebhookDelivery(
        key=f"{original.event_id}:{original.endpoint_id}:redeliver:{count}",
        event_id=original.event_id, endpoint_id=original.endpoint_id, customer_id=original.customer_id,
        type=original.type, status=PENDING, attempts=0, redelivery_of=original.id,
        created_at=dt.datetime.now(dt.UTC),
    )
    session.add(row)
    session.flush()
    return DeliveryRef(row.id, row.endpoint_id)


def delivery_log(
    session: Session, *, failed: bool = False, customer_id: str | None = None,
    endpoint_id: str | None = None, limit: int = 50,
) -> list[WebhookDelivery]:
    """Newest first. ``failed``: given up, or still retrying after an error."""
    q = select(WebhookDelivery)
    if failed:
        q = q.where(
            (WebhookDelivery.status == FAILED)
            | ((WebhookDelivery.status == PENDING) & (WebhookDelivery.attempts > 0))
        )
    if customer_id:
        q = q.where(WebhookDelivery.customer_id == customer_id)
    if endpoint_id:
        q = q.where(WebhookDelivery.endpoint_id == endpoint_id)
    return list(session.scalars(q.order_by(WebhookDelivery.id.desc()).limit(limit)))


def counts(session: Session) -> tuple[dict[str, int], dict[str, int]]:
    """Endpoints by state (enabled, disabled) and deliveries by status, for /metrics."""
    endpoints = {"enabled": 0, "disabled": 0}
    for disabled, n in session.execute(
        select(WebhookEndpoint.disabled_at.is_not(None), func.count())
        .where(WebhookEndpoint.removed_at.is_(None))
        .group_by(WebhookEndpoint.disabled_at.is_not(None))
    ):
        endpoints["disabled" if disabled else "enabled"] += n
    deliveries = {s: 0 for s in (PENDING, DELIVERED, FAILED, SKIPPED)}
    for status, n in session.execute(
        select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
    ):
        deliveries[status] = n
    return endpoints, deliveries
