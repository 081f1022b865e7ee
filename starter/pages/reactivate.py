"""The reactivation page (``/billing/reactivate?token=…``), opened from a win-back email.

GET shows the plan, its price, the campaign's offer, what is charged today and the next
payment with its date and, with a card on file, one button (POST) that reactivates: the entity's ``reactivate`` update subscribes again through the Stripe
activity with the offer's coupon. Without a card it links to the card page
(``/billing/card``, purpose ``card``) instead of collecting one here. GET changes nothing
(link scanners prefetch GETs). A customer already active gets a page that says so; a
forged, foreign or expired token a clear page.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client
from temporalio.service import RPCError

from lifecycle.billing.shapes import discounted
from lifecycle.contracts import catalog
from lifecycle.contracts.coupons import offer_words
from lifecycle.contracts.customer import CustomerState
from lifecycle.contracts.ids import customer_workflow_id
from lifecycle.contracts.money import money
from lifecycle.contracts.winback import ReactivateRequest
from lifecycle.email.rules import customer_zone
from lifecycle.links import BadLink, ExpiredLink, Link, link_url, make_link_token, read_link_token
from lifecycle.models import Customer
from lifecycle.settings import Settings
from lifecycle.usage.periods import add_months
from starter.api.deps import SessionsDep, SettingsDep, TemporalDep
from starter.api.subscriptions import run_update
from starter.pages import error_page, hidden_token, posted_token, render_page
from workflows.customer import CustomerWorkflow

router = APIRouter(tags=["pages"])

PURPOSE = "reactivate"
CARD_PURPOSE, CARD_PATH = "card", "/billing/card"
ENDED_STAGES = ("canceled", "expired", "lost")

MAX_TOKEN = 1024
TokenQuery = Annotated[str, Query(min_length=3, max_length=MAX_TOKEN, description="the signed token")]
HTML_ERRORS = {
    code: {"description": what, "content": {"text/html": {}}}
    for code, what in (
        (400, "the link is not valid (an HTML page)"),
        (410, "the link has expired (an HTML page)"),
        (503, "the lifecycle could not be asked (an HTML page)"),
    )
}


class _Refused(Exception):
    def __init__(self, page: HTMLResponse) -> None:
        self.page = page


def _link(settings: Settings, token: str) -> Link:
    try:
        return read_link_token(settings.link_secret, PURPOSE, token, now=dt.datetime.now(dt.UTC))
    except ExpiredLink as exc:
        raise _Refused(error_page(
            f"{exc}. Sign in to your account to subscribe again, or answer the email for a new link.",
            410, title="This link has expired",
        )) from None
    except BadLink as exc:
        raise _Refused(error_page(f"This reactivation link cannot be used: {exc}.", 400)) from None


def _customer(sessions: sessionmaker[Session], customer_id: str) -> Customer | None:
    with sessions() as session:
        return session.get(Customer, customer_id)


async def _state(client: Client, settings: Settings, customer_id: str) -> CustomerState:
    deadline = settings.temporal_deadline_seconds
    try:
        handle = client.get_workflow_handle(customer_workflow_id(customer_id))
        call = handle.query(CustomerWorkflow.state, rpc_timeout=timedelta(seconds=deadline))
        return await asyncio.wait_for(call, timeout=deadline)
    except (RPCError, RuntimeError, TimeoutError):
        raise _Refused(error_page(
            "We could not look up your account just now. Please try the link again in a minute.",
            503, title="Please try again",
        )) from None


def _offer_text(state: CustomerState, link: Link) -> str | None:
    r = state.winback
    if not r.winback_percent_off or link.claims.get("winback") != r.winbacks:
        return None
    interval = state.billing.interval or "month"
    plan = catalog.PLANS_BY_CODE.get(state.billing.plan or state.plan)
    cents = (plan.annual_price_cents if interval == "year" else plan.monthly_price_cents) if plan else 0
    # the words the emails used, true to the coupon reactivating creates (one rule for both)
    return offer_words(r.winback_percent_off, r.winback_months, interval, cents)


def _card_url(settings: Settings, customer_id: str) -> str:
    expires = dt.datetime.now(dt.UTC) + timedelta(days=settings.link_ttl_days)
    token = make_link_token(settings.link_secret, CARD_PURPOSE, customer_id, expires)
    return link_url(settings.public_url, CARD_PATH, token)


def _already_active(state: CustomerState) -> HTMLResponse:
    b = state.billing
    plan = catalog.PLANS_BY_CODE.get(b.plan or state.plan)
    name = plan.name if plan else (b.plan or state.plan)
    return render_page(
        "You are already subscribed",
        f"<p>Your {html.escape(name)} subscription is active: there is nothing to reactivate.</p>"
        "<p class='muted'>You can close this page.</p>",
    )


def _add_card_page(settings: Settings, customer_id: str, why: str) -> HTMLResponse:
    url = _card_url(settings, customer_id)
    return render_page(
        "Add a card to come back",
        f"<p>{html.escape(why)}</p>"
        f"<p><a class='button' href='{html.escape(url)}'>Add a card</a></p>"
        "<p class='muted'>Then open the link in your email again to reactivate.</p>",
    )


@dataclass(frozen=True)
class Terms:
    """What reactivating charges: today, and at the next payment (Stripe's rules for the
    coupon the reactivation creates: ``once`` takes it off the first invoice; ``repeating``
    for N months off every invoice issued in the N months from today)."""

    plan: str
    interval: str
    price_cents: int
    today_cents: int
    next_at: dt.datetime
    next_cents: int
    full_price_from: dt.datetime | None  # the first full-price payment, if later than the next


def reactivation_terms(state: CustomerState, link: Link, now: dt.datetime) -> Terms:
    code = state.billing.plan or state.plan
    interval = state.billing.interval or "month"
    plan = catalog.PLANS_BY_CODE.get(code)
    price = (plan.monthly_price_cents if interval == "month" else plan.annual_price_cents) if plan else 0
    r = state.winback
    with_offer = r.winback_percent_off > 0 and link.claims.get("winback") == r.winbacks
    coupons = [{"percent_off": r.winback_percent_off}] if with_offer else []
    today = discounted(price, coupons)
    step = 1 if interval == "month" else 12
    next_at = add_months(now, step)
    # a repeating coupon covers the invoices issued before it ends, N months from today
    offer_months = r.winback_months if with_offer else 0
    next_discounted = offer_months > step
    full_from = None
    if next_discounted:
        n = -(-offer_months // step)  # the first payment issued at or after the offer's end
        full_from = add_months(now, n * step)
    return Terms(plan.name if plan else code, interval, price, today,
                 next_at, today if next_discounted else price, full_from)


def _day(at: dt.datetime) -> str:
    return f"{at.day} {at:%B %Y}"


def _plan_table(terms: Terms, offer: str | None, zone: ZoneInfo) -> str:
    price = f"{money(terms.price_cents)}/{terms.interval}"
    rows = [("Plan", html.escape(terms.plan)), ("Price", html.escape(price))]
    if offer:
        rows.append(("Your offer", f"<strong>{html.escape(offer)}</strong>"))
    less = terms.price_cents - terms.today_cents
    rows.append(("Charged today", f"<strong>{html.escape(money(terms.today_cents))}</strong>"
                 + (f" ({html.escape(money(terms.price_cents))} less {html.escape(money(less))})" if less else "")))
    rows.append(("Next payment", html.escape(f"{money(terms.next_cents)} on {_day(terms.next_at.astimezone(zone))}")))
    if terms.full_price_from is not None:
        rows.append(("Then", html.escape(f"{price} from {_day(terms.full_price_from.astimezone(zone))}")))
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table style='margin-bottom:20px'>{body}</table>"


@router.get("/billing/reactivate", response_class=HTMLResponse, responses=HTML_ERRORS)
async def reactivate_page(
    token: TokenQuery, settings: SettingsDep, sessions: SessionsDep, client: TemporalDep
) -> HTMLResponse:
    """The plan, the offer and the one-click button (GET changes nothing)."""
    try:
        link = _link(settings, token)
        customer = await run_in_threadpool(_customer, sessions, link.customer_id)
        if customer is None:
            return error_page("This link names no account of ours.", 400)
        state = await _state(client, settings, link.customer_id)
    except _Refused as refused:
        return refused.page
    if state.billing.live:
        return _already_active(state)
    if state.stage not in ENDED_STAGES:
        return render_page(
            "Nothing to reactivate",
            f"<p>Your account is {html.escape(state.stage)}: there is no ended subscription to restart.</p>",
        )
    terms = reactivation_terms(state, link, dt.datetime.now(dt.UTC))
    name, table = terms.plan, _plan_table(terms, _offer_text(state, link), customer_zone(customer.timezone)[0])
    has_card = customer.payment_method_on_file or state.payment_method_on_file or bool(
        state.billing.stripe_subscription_id
    )
    if not has_card:
        return render_page(
            f"Come back to {name}",
            f"{table}<p>We need a card on file first.</p>"
            f"<p><a class='button' href='{html.escape(_card_url(settings, link.customer_id))}'>Add a card</a></p>"
            "<p class='muted'>Then open the link in your email again to reactivate in one click.</p>",
        )
    return render_page(
        f"Come back to {name}",
        f"{table}<form method='post' action='/billing/reactivate'>{hidden_token(token)}"
        f"<button type='submit'>Reactivate {html.escape(name)}</button></form>"
        f"<p class='muted'>Your card on file is charged {html.escape(money(terms.today_cents))} today; "
        "cancel any time.</p>",
    )


@router.post("/billing/reactivate", response_class=HTMLResponse, responses=HTML_ERRORS)
async def reactivate(
    request: Request, settings: SettingsDep, sessions: SessionsDep, client: TemporalDep
) -> HTMLResponse:
    """Reactivate in one click: the subscription restarts with the offer's coupon. The form
    posts the token in its body (``token``); a token in the query string is read too."""
    token = await posted_token(request, MAX_TOKEN)
    if token is None:
        return error_page("This reactivation link cannot be used: it has no token.", 400)
    try:
        link = _link(settings, token)
    except _Refused as refused:
        return refused.page
    winback = link.claims.get("winback")
    req = ReactivateRequest(request_id=uuid.uuid4().hex, winback=winback if isinstance(winback, int) else 0)
    try:
        result = await run_update(
            client, link.customer_id, CustomerWorkflow.reactivate, req, f"reactivate:{req.request_id}",
            deadline=settings.temporal_deadline_seconds,
        )
    except HTTPException as exc:
        detail = str(exc.detail)
        if detail.startswith("already active"):
            try:
                return _already_active(await _state(client, settings, link.customer_id))
            except _Refused as refused:
                return refused.page
        if exc.status_code == 404:
            return error_page("This link names no account of ours.", 400)
        code = exc.status_code if exc.status_code >= 500 else 409
        return error_page(f"We could not reactivate your subscription: {detail}", code, title="Not reactivated")
    if result.outcome == "no_payment_method":
        return _add_card_page(settings, link.customer_id, "We need a card on file before you can come back.")
    if result.outcome != "active":
        return _add_card_page(
            settings, link.customer_id, "Your card was declined, so the subscription did not restart."
        )
    plan = catalog.PLANS_BY_CODE.get(result.plan or "")
    name = plan.name if plan else (result.plan or "your plan")
    try:
        offer = _offer_text(await _state(client, settings, link.customer_id), link)
    except _Refused:
        offer = None
    applied = f"<p>Your offer, <strong>{html.escape(offer)}</strong>, is applied.</p>" if offer else ""
    return render_page(
        "Welcome back!",
        f"<p>Your {html.escape(name)} subscription is active again.</p>{applied}"
        "<p class='muted'>You can close this page.</p>",
    )
