"""POST /webhooks/stripe: verify, record once, answer, then hand over.

1. The ``Stripe-Signature`` header is checked against the raw body with the SDK
   (wrong secret, stale timestamp, tampered body: 400, nothing recorded, counted).
2. The event is recorded once by its id; a redelivery is acknowledged and not processed
   again.
3. The answer goes out; then, in the background, the event is applied to the billing
   mirror (database only, Stripe is never called here) and the customer's workflow is
   signalled, with signal-with-start when none runs (a subscription made in the Stripe
   dashboard still gets a lifecycle). A failure is recorded on the event with its reason,
   logged with the event id and counted; ``lifecycle stripe replay EVENT_ID`` retries it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import stripe
from fastapi import APIRouter, BackgroundTasks, HTTPException, Request
from prometheus_client import Counter, Histogram
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.billing import Handover, mark_failed, process_event, record_event
from lifecycle.db import session_scope
from lifecycle.settings import Settings
from lifecycle.stripe_shapes import ShapeError, parse_event
from starter.api.errors import WebhookAck, responses
from starter.events import signal_customer, start_input

log = logging.getLogger("lifecycle.webhooks.stripe")

router = APIRouter(tags=["stripe"])

WEBHOOK_EVENTS = Counter(
    "lifecycle_stripe_webhook_events",
    "Stripe webhook events received, by type and result",
    ["type", "result"],  # processed | ignored | duplicate | failed
)
WEBHOOK_FAILURES = Counter(
    "lifecycle_stripe_webhook_failures",
    "Stripe webhook events whose processing failed (see `lifecycle stripe events --failed`)",
    ["type", "stage"],  # stage: mirror | handover
)
SIGNATURE_FAILURES = Counter(
    "lifecycle_stripe_webhook_signature_failures",
    "Stripe webhook requests refused: bad or missing signature, stale timestamp, bad body",
    ["reason"],  # missing | stale | mismatch | malformed | not_configured
)
PROCESSING_SECONDS = Histogram(
    "lifecycle_stripe_webhook_processing_seconds",
    "Time from receipt to the mirror updated and the workflow signalled",
)


def _signature_reason(exc: stripe.SignatureVerificationError) -> str:
    text = str(exc).lower()
    if "tolerance" in text:
        return "stale"
    if "unable to extract" in text or "no signatures found with expected scheme" in text:
        return "missing"
    return "mismatch"


async def hand_over(temporal: Any, settings: Settings, handover: Handover) -> None:
    """Signal the customer's workflow; where none runs, start one whose stage comes from
    billing (origin "stripe": no trial for a customer who is already paying)."""
    start = start_input(settings, handover.customer_id, handover.plan)
    start.origin = "stripe"
    await signal_customer(
        temporal, handover.customer_id, handover.event, start=start, task_queue=settings.task_queue
    )


async def process_and_hand_over(
    factory: sessionmaker[Session], temporal: Any, settings: Settings, event_id: str, event_type: str,
    received: float | None = None,
) -> str:
    """Apply one recorded event and tell the workflow; returns the event's final status."""
    outcome = await asyncio.to_thread(process_event, factory, event_id)
    status = outcome.status
    if status == "failed":
        WEBHOOK_FAILURES.labels(event_type, "mirror").inc()
    elif outcome.handover is not None:
        reason = None
        if temporal is None:
            reason = "handover: no Temporal client (the API started without one)"
        else:
            try:
                await hand_over(temporal, settings, outcome.handover)
            except Exception as exc:  # noqa: BLE001 - recorded, counted, replayable
                reason = f"handover: {type(exc).__name__}: {exc}"
        if reason is not None:
            await asyncio.to_thread(mark_failed, factory, event_id, reason)
            WEBHOOK_FAILURES.labels(event_type, "handover").inc()
            log.error("stripe event %s (%s) failed: %s", event_id, event_type, reason)
            status = "failed"
    WEBHOOK_EVENTS.labels(event_type, status).inc()
    if received is not None:
        PROCESSING_SECONDS.observe(time.monotonic() - received)
    log.info("stripe event %s (%s): %s", event_id, event_type, status)
    return status


def _record(factory: sessionmaker[Session], payload: dict[str, Any]) -> bool:
    with session_scope(factory) as session:
        return record_event(session, payload)


@router.post(
    "/webhooks/stripe",
    response_model=WebhookAck,
    responses=responses(400, 413, 503),
    openapi_extra={"parameters": [{
        "name": "Stripe-Signature", "in": "header", "required": True, "schema": {"type": "string"},
        "description": "Stripe's signature of the raw body (t=…,v1=…)",
    }], "requestBody": {"required": True, "description": "the Stripe event, as Stripe signed it",
                        "content": {"application/json": {"schema": {"type": "object"}}}}},
)
async def stripe_webhook(request: Request, background: BackgroundTasks) -> dict[str, Any]:
    received = time.monotonic()
    state = request.app.state
    settings: Settings = state.settings
    secret = settings.stripe_webhook_secret.get_secret_value()
    if not secret:
        SIGNATURE_FAILURES.labels("not_configured").inc()
        raise HTTPException(503, "Stripe webhooks are not configured: set LIFECYCLE_STRIPE_WEBHOOK_SECRET")
    raw = await request.body()  # the bytes as received: the signature covers exactly these
    header = request.headers.get("stripe-signature")
    if not header:
        SIGNATURE_FAILURES.labels("missing").inc()
        log.warning("stripe webhook refused: no Stripe-Signature header")
        raise HTTPException(400, "Stripe-Signature header: missing")
    try:
        stripe.WebhookSignature.verify_header(
            raw.decode("utf-8"), header, secret, settings.stripe_webhook_tolerance_seconds
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError, IndexError) as exc:
        reason = _signature_reason(exc) if isinstance(exc, stripe.SignatureVerificationError) else "missing"
        SIGNATURE_FAILURES.labels(reason).inc()
        log.warning("stripe webhook refused (%s): %s", reason, exc)
        raise HTTPException(400, f"Stripe-Signature header: {reason} ({exc})") from None
    try:
        payload = json.loads(raw)
        ev = parse_event(payload)
    except (ValueError, ShapeError) as exc:
        SIGNATURE_FAILURES.labels("malformed").inc()
        raise HTTPException(400, f"body: not a Stripe event ({exc})") from None

    factory: sessionmaker[Session] = state.session_factory
    is_new = await asyncio.to_thread(_record, factory, payload)
    if not is_new:
        WEBHOOK_EVENTS.labels(ev.type, "duplicate").inc()
        log.info("stripe event %s (%s) redelivered; already recorded", ev.id, ev.type)
        return {"received": True, "duplicate": True, "id": ev.id}
    temporal = getattr(state, "temporal", None)
    background.add_task(
        process_and_hand_over, factory, temporal, settings, ev.id, ev.type, received
    )
    return {"received": True, "duplicate": False, "id": ev.id}
