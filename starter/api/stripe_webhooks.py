"""POST /webhooks/stripe: verify, record once, answer, then hand over.

1. The ``Stripe-Signature`` header is checked against the raw body with the SDK
   (wrong secret, stale timestamp, tampered body: 400, nothing recorded, counted).
2. The event is recorded once by its id. A redelivery of an event already applied is
   acknowledged and not processed again; one still ``received`` or ``failed`` (the API
   died after its 200, or processing failed) is processed now.
3. The answer goes out; then, in the background, the event is applied to the billing
   mirror (database only, Stripe is never called here) and what the customer's workflow
   must hear is queued in the signal outbox in the same transaction, then delivered
   (signal-with-start when none runs: a subscription made in the Stripe dashboard still
   gets a lifecycle). Temporal down: the hand-over stays queued and the relay delivers it.
4. The sweeper (:func:`sweep_round`, every ``LIFECYCLE_STRIPE_SWEEP_INTERVAL_SECONDS``)
   processes what is still ``received`` or ``failed`` after
   ``LIFECYCLE_STRIPE_STUCK_AFTER_SECONDS``, with back-off; each such event is logged and
   counted; ``lifecycle stripe events --stuck`` lists them and ``lifecycle stripe replay
   EVENT_ID`` reprocesses one by hand.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

import stripe
from fastapi import APIRouter, BackgroundTasks, HTTPException, Request
from prometheus_client import Counter, Histogram
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from lifecycle.billing.event_shapes import parse_event
from lifecycle.billing.shapes import ShapeError
from lifecycle.billing.webhooks import (
    PENDING_STATUSES,
    claim_stuck,
    event_status,
    process_event,
    record_event,
)
from lifecycle.contracts.dunning import ENGINE
from lifecycle.db import session_scope
from lifecycle.settings import Settings
from starter.api.errors import WebhookAck, responses
from starter.signals.relay import Relay

log = logging.getLogger("lifecycle.webhooks.stripe")

router = APIRouter(tags=["stripe"])

WEBHOOK_EVENTS = Counter(
    "lifecycle_stripe_webhook_events",
    "Stripe webhook events received, by type and result",
    ["type", "result"],  # processed | ignored | duplicate | failed
)
STUCK_EVENTS = Counter(
    "lifecycle_stripe_webhook_stuck_events",
    "Stripe events found unprocessed after LIFECYCLE_STRIPE_STUCK_AFTER_SECONDS and swept",
    ["type"],
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


async def process_and_hand_over(
    factory: sessionmaker[Session], temporal: Any, settings: Settings, event_id: str, event_type: str,
    received: float | None = None, *, force: bool = False, relay: Relay | None = None,
) -> str:
    """Apply one recorded event and tell the workflow; returns the event's final status.

    The hand-over is queued with the mirror update, so "processed" holds even when
    Temporal cannot take it now: the relay delivers it later (counted as a hand-over failure).
    """
    engine_retries = settings.dunning_retry_mode == ENGINE  # Stripe must not retry: warn if it does
    outcome = await run_in_threadpool(
        lambda: process_event(factory, event_id, force=force, engine_retries=engine_retries)
    )
    status = outcome.status
    if status == "already":
        return (await run_in_threadpool(event_status, factory, event_id)) or status
    if status == "failed":
        WEBHOOK_FAILURES.labels(event_type, "mirror").inc()
    elif outcome.handover is not None:
        relay = relay or Relay(temporal, settings, factory)
        if not await relay.deliver_customer(outcome.handover.customer_id):
            WEBHOOK_FAILURES.labels(event_type, "handover").inc()
            log.warning("stripe event %s (%s) applied; its hand-over is queued for Temporal", event_id, event_type)
    WEBHOOK_EVENTS.labels(event_type, status).inc()
    if received is not None:
        PROCESSING_SECONDS.observe(time.monotonic() - received)
    log.info("stripe event %s (%s): %s", event_id, event_type, status)
    return status


async def sweep_round(relay: Relay) -> int:
    """Process every event still unapplied after the stuck threshold; returns how many were taken."""
    taken = 0
    while True:
        stuck = await run_in_threadpool(
            lambda: claim_stuck(
                relay.factory, older_than=timedelta(seconds=relay.settings.stripe_stuck_after_seconds)
            )
        )
        if not stuck:
            return taken
        for event_id, event_type, attempts in stuck:
            STUCK_EVENTS.labels(event_type).inc()
            log.warning("stripe event %s (%s) stuck after %d attempt(s); processing it", event_id, event_type, attempts)
            await process_and_hand_over(
                relay.factory, relay.client, relay.settings, event_id, event_type, relay=relay
            )
        taken += len(stuck)


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
    except (ValueError, ShapeError, RecursionError) as exc:  # RecursionError: absurdly deep JSON
        SIGNATURE_FAILURES.labels("malformed").inc()
        raise HTTPException(400, f"body: not a Stripe event ({exc})") from None

    factory: sessionmaker[Session] = state.session_factory
    is_new = await run_in_threadpool(_record, factory, payload)
    temporal = getattr(state, "temporal", None)
    if not is_new:
        WEBHOOK_EVENTS.labels(ev.type, "duplicate").inc()
        status = await run_in_threadpool(event_status, factory, ev.id)
        if status in PENDING_STATUSES:  # acknowledged once but never applied: apply it now
            log.info("stripe event %s (%s) redelivered while %s; processing it", ev.id, ev.type, status)
            background.add_task(
                process_and_hand_over, factory, temporal, settings, ev.id, ev.type, received, relay=state.relay
            )
        else:
            log.info("stripe event %s (%s) redelivered; already %s", ev.id, ev.type, status)
        return {"received": True, "duplicate": True, "id": ev.id}
    background.add_task(
        process_and_hand_over, factory, temporal, settings, ev.id, ev.type, received, relay=state.relay
    )
    return {"received": True, "duplicate": False, "id": ev.id}
