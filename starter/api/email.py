"""Email routes: the unsubscribe link (GET page, POST one-click) and SendGrid's Event Webhook.

No API key on these routes: the unsubscribe token is signed by us and names exactly
one customer; the webhook must carry SendGrid's signature, checked with
``LIFECYCLE_SENDGRID_WEBHOOK_PUBLIC_KEY``. Without that key it answers 503 and records
nothing, unless ``LIFECYCLE_SENDGRID_WEBHOOK_INSECURE_NO_VERIFY=true`` (local use only;
the smtp and sendgrid providers refuse to start with it).

* ``GET /unsubscribe?token=…`` shows a page with a confirm button (mail scanners follow
  GET links; they must not unsubscribe anyone).
* ``POST /unsubscribe`` unsubscribes: the page's form posts the token in its body (never in
  the action URL), RFC 8058 one-click (``List-Unsubscribe-Post: List-Unsubscribe=One-Click``)
  posts to the link itself, token in the query. It records a
  suppression and a timeline entry, then tells the customer's workflow (CustomerEvent
  ``unsubscribed``). The database is the authority: if Temporal is down the unsubscribe
  still holds (every send checks suppressions) and the page still says so.
* ``POST /webhooks/sendgrid``: bounces, spam reports and unsubscribes add suppressions;
  delivered, open and click move the message's status forward (never back).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse
from sendgrid.helpers.eventwebhook import EventWebhook
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from lifecycle.contracts.customer import CustomerEvent
from lifecycle.contracts.events import Unsubscribed, customer_event
from lifecycle.db import add_timeline_event, session_scope
from lifecycle.email.service import PROGRESS
from lifecycle.email.suppressions import BOUNCE, SPAM, UNSUBSCRIBE, add_suppression
from lifecycle.email.unsubscribe import BadToken, read_token
from lifecycle.models import Customer, EmailMessage, LifecycleEvent
from lifecycle.settings import Settings
from lifecycle.signal_outbox import enqueue
from starter.api.deps import SettingsDep
from starter.api.errors import Received, json_responses, responses
from starter.pages import hidden_token, posted_token, render_page

log = logging.getLogger(__name__)
router = APIRouter(tags=["email"])

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


# --- dependencies (SettingsDep from starter.api.deps; the session factory for commits) --


async def _notify(request: Request) -> Any:
    """An ``async (customer_id, CustomerEvent) -> None`` that delivers the customer's queued
    events (the route queued ``event`` in the signal outbox with its facts)."""
    state = request.app.state

    async def notify(customer_id: str, event: CustomerEvent) -> None:
        await state.relay.deliver_customer(customer_id)

    return notify


NotifyDep = Annotated[Any, Depends(_notify)]


def _sessions(request: Request) -> sessionmaker[Session]:
    return request.app.state.session_factory


SessionsDep = Annotated[sessionmaker[Session], Depends(_sessions)]


# --- unsubscribe ------------------------------------------------------------------------


def _customer_for(settings: Settings, session: Session, token: str) -> Customer:
    try:
        customer_id = read_token(settings.unsubscribe_secret, token)
    except BadToken as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"token: {exc}") from None
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "token: no such customer")
    return customer


MAX_TOKEN = 512
TokenQuery = Annotated[str, Query(min_length=3, max_length=MAX_TOKEN, description="the signed token")]


@router.get("/unsubscribe", response_class=HTMLResponse, responses={
    400: {"description": "the token is not valid (an HTML page)", "content": {"text/html": {}}},
    404: {"description": "the token names no customer (an HTML page)", "content": {"text/html": {}}},
})
def unsubscribe_page(token: TokenQuery, settings: SettingsDep, sessions: SessionsDep) -> HTMLResponse:
    """A confirmation page: GET never unsubscribes (link scanners prefetch GETs)."""
    with session_scope(sessions) as session:
        try:
            customer = _customer_for(settings, session, token)
        except HTTPException as exc:
            return render_page("This link is not valid", f"<p>{html.escape(exc.detail)}</p>", exc.status_code)
        masked = _mask(customer.email)
    return render_page(
        "Unsubscribe",
        f"<p>Stop marketing email from {html.escape(settings.email_company_name)} to "
        f"<strong>{html.escape(masked)}</strong>? You will still get messages about your "
        "account and billing.</p>"
        f"<form method='post' action='/unsubscribe'>{hidden_token(token)}"
        "<button type='submit'>Unsubscribe</button></form>",
    )


@router.post("/unsubscribe", response_class=HTMLResponse, responses=json_responses(400, 404, 413))
async def unsubscribe(
    request: Request, settings: SettingsDep, sessions: SessionsDep, notify: NotifyDep,
    token: Annotated[str | None, Query(min_length=3, max_length=MAX_TOKEN,
                                       description="the signed token (RFC 8058 one-click)")] = None,
) -> HTMLResponse:
    """Unsubscribe from marketing email: the page's form (the token in the body) and RFC 8058
    one-click (the token in the link's query string)."""
    token = await posted_token(request, MAX_TOKEN)
    if token is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "token: missing (a form field or the link's query)")

    def record() -> tuple[str, str, str | None]:
        with session_scope(sessions) as session:
            customer = _customer_for(settings, session, token)
            customer_id, email = customer.id, customer.email
            new = add_suppression(
                session, email=email, reason=UNSUBSCRIBE, customer_id=customer_id, source="link"
            )
            action = None  # a second click while unsubscribed changes nothing and records nothing
            if new:
                now = dt.datetime.now(dt.UTC)
                action = action_id("unsubscribed", customer_id, now)
                add_timeline_event(
                    session, key=action, customer_id=customer_id, kind="unsubscribed", at=now,
                    detail={"source": "unsubscribe link", "reason": "customer unsubscribed"},
                )
                enqueue(session, customer_id, _unsubscribed(action, "link"))
            return customer_id, email, action

    customer_id, email, action = await run_in_threadpool(record)
    if action is not None:
        await _tell_workflow(notify, customer_id, action, "link")
    return render_page(
        "You are unsubscribed",
        f"<p>{html.escape(_mask(email))} will get no more marketing email from "
        f"{html.escape(settings.email_company_name)}.</p>",
    )


def action_id(kind: str, customer_id: str, now: dt.datetime) -> str:
    """One id per change of a customer's subscription: the timeline key and the event id.

    Unsubscribe, opt back in, unsubscribe again are three actions; each must reach the
    timeline and the workflow (which ignores event ids it has seen) once. Same shape as
    the email-preferences route's ids, plus a random tail.
    """
    return f"{kind}:{customer_id}:{now:%Y%m%dT%H%M%S%f}:{uuid.uuid4().hex[:8]}"


def _unsubscribed(event_id: str, source: str) -> CustomerEvent:
    return customer_event(event_id, Unsubscribed(source=source))


async def _tell_workflow(notify: Any, customer_id: str, event_id: str, source: str) -> None:
    """Deliver the queued unsubscribe now; if Temporal cannot take it, the relay will."""
    try:
        await notify(customer_id, _unsubscribed(event_id, source))
    except Exception as exc:  # queued with the suppression: the relay delivers it later
        log.warning("unsubscribe of %s recorded and queued, workflow not told yet: %s", customer_id, exc)


def _mask(email: str) -> str:
    local, _, domain = email.partition("@")
    return (local[:2] + "…" if len(local) > 2 else local) + "@" + domain


# --- SendGrid Event Webhook -------------------------------------------------------------


@router.post(
    "/webhooks/sendgrid", response_model=Received, responses=responses(400, 401, 403, 413, 503),
    openapi_extra={"requestBody": {"required": True, "description": "SendGrid's Event Webhook batch",
                                   "content": {"application/json": {"schema": {
                                       "type": "array", "items": {"type": "object"}}}}}},
)
async def sendgrid_events(
    request: Request, settings: SettingsDep, sessions: SessionsDep, notify: NotifyDep
) -> JSONResponse:
    raw = await request.body()  # the bytes as received: the signature covers exactly these
    _verify_sendgrid(settings, request, raw)
    try:
        events = json.loads(raw)
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"body: not JSON ({exc})") from None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "body: expected a JSON array of events")
    def record() -> list[tuple[str, str] | None]:
        with session_scope(sessions) as session:
            outcome = [apply_sendgrid_event(session, e) for e in events]
            for unsubscribed in outcome:
                if unsubscribed is not None:
                    enqueue(session, unsubscribed[0], _unsubscribed(unsubscribed[1], "sendgrid"))
            return outcome

    outcome = await run_in_threadpool(record)
    told: set[str] = set()
    for unsubscribed in outcome:
        if unsubscribed is not None and unsubscribed[0] not in told:
            told.add(unsubscribed[0])
            await _tell_workflow(notify, *unsubscribed, "sendgrid")
    return JSONResponse({"received": len(events)})


def _verify_sendgrid(settings: Settings, request: Request, raw: bytes) -> None:
    """Refuse the post unless SendGrid signed it; closed when no key is configured.

    Only ``LIFECYCLE_SENDGRID_WEBHOOK_INSECURE_NO_VERIFY=true`` (refused at start with the
    smtp and sendgrid providers, and by the API and worker with any production-like settings) lets an unsigned post through, and only without a key.
    """
    key = settings.sendgrid_webhook_public_key
    if not key:
        if settings.sendgrid_webhook_insecure_no_verify:
            return
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "SendGrid Event Webhook is not configured: set LIFECYCLE_SENDGRID_WEBHOOK_PUBLIC_KEY "
            "(the verification key from SendGrid's Mail Settings)",
        )
    signature = request.headers.get(SIGNATURE_HEADER)
    timestamp = request.headers.get(TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, f"missing {SIGNATURE_HEADER} / {TIMESTAMP_HEADER}"
        )
    try:
        ok = EventWebhook(key).verify_signature(raw.decode("utf-8"), signature, timestamp)
    except (ValueError, UnicodeDecodeError):  # not base64, not UTF-8
        ok = False
    if not ok:
        log.warning("SendGrid webhook refused: the signature does not match the body")
        raise HTTPException(status.HTTP_403_FORBIDDEN, "signature does not match the body")


def _message_for(session: Session, event: dict[str, Any]) -> EmailMessage | None:
    raw_id = event.get("lifecycle_message_id")
    if raw_id is not None and str(raw_id).isdigit():
        row = session.get(EmailMessage, int(raw_id))
        if row is not None:
            return row
    sg_id = str(event.get("sg_message_id") or "")
    if sg_id:
        return session.scalar(
            select(EmailMessage).where(EmailMessage.provider_message_id == sg_id.split(".")[0])
        )
    return None


def _advance(row: EmailMessage, new_status: str) -> None:
    if PROGRESS.get(new_status, 0) > PROGRESS.get(row.status, 99):
        row.status = new_status


def apply_sendgrid_event(session: Session, event: dict[str, Any]) -> tuple[str, str] | None:
    """Apply one event; when the customer newly unsubscribed, (customer id, event id)."""
    kind = str(event.get("event", ""))
    email = str(event.get("email") or "").strip().lower()
    row = _message_for(session, event)
    customer_id = row.customer_id if row is not None else None
    if customer_id is None and email:
        customer_id = session.scalar(select(Customer.id).where(Customer.email == email))
    at = dt.datetime.fromtimestamp(int(event.get("timestamp") or 0), dt.UTC) if str(
        event.get("timestamp", "")).isdigit() else dt.datetime.now(dt.UTC)

    if kind in ("delivered", "open", "click") and row is not None:
        _advance(row, {"delivered": "delivered", "open": "opened", "click": "clicked"}[kind])
        return None
    reason = None
    if kind == "bounce" and event.get("type", "bounce") != "blocked":
        reason = BOUNCE
    elif kind == "dropped":
        why = str(event.get("reason", "")).lower()
        reason = BOUNCE if "bounce" in why else SPAM if "spam" in why else None
        if row is not None and row.status in ("sending", "sent", "uncertain", "queued"):
            row.status = "dropped"
    elif kind == "spamreport":
        reason = SPAM
    elif kind in ("unsubscribe", "group_unsubscribe"):
        reason = UNSUBSCRIBE
    if reason is None or not email:
        return None
    if row is not None and reason == BOUNCE and row.status in ("sending", "sent", "uncertain"):
        row.status = "bounced"
    # SendGrid's own event id names the action; a redelivery of an event already recorded
    # (even after the customer opted back in) changes nothing
    sg_event_id = str(event.get("sg_event_id") or "")
    key = (f"suppressed:{reason}:{email}:{sg_event_id}" if sg_event_id
           else action_id(f"suppressed:{reason}", email, dt.datetime.now(dt.UTC)))
    if sg_event_id and session.scalar(
        select(LifecycleEvent.id).where(LifecycleEvent.event_key == key[:255])
    ) is not None:
        return None
    new = add_suppression(
        session, email=email, reason=reason, customer_id=customer_id, source=f"sendgrid:{kind}"
    )
    if customer_id and new:
        add_timeline_event(
            session, key=key, customer_id=customer_id,
            kind="unsubscribed" if reason == UNSUBSCRIBE else "email_suppressed", at=at,
            campaign=row.campaign if row is not None else None,
            detail={"reason": reason, "source": f"sendgrid {kind}",
                    "message_id": row.id if row is not None else None},
        )
    return (customer_id, key[:255]) if (customer_id and new and reason == UNSUBSCRIBE) else None
