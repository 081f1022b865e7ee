"""The card-update page: ``GET /billing/card?token=…`` (the link in pre-dunning and dunning
emails) and ``POST /billing/card`` (our own card form's submit).

The signed, expiring link (``lifecycle.links``, purpose ``card``) is the only
authentication. Against real Stripe the page redirects (303) to a Stripe Billing Portal
session that opens on "update payment method" and returns to the product. Against
localstripe, which has no portal, it serves our own form built on the Stripe.js stand-in
localstripe serves: the browser confirms a SetupIntent with the card, then posts the
SetupIntent's id here, and the server (in a threadpool: ``lifecycle.billing.card_update``)
attaches the card, makes it the default and pays every open invoice, then answers with
what was paid, or with the decline and the form again.

Every failure is a page a customer can read (400 damaged link, 410 expired, 404 unknown
customer, 503 payment provider unreachable), never a stack trace. These are pages for
browsers, not API operations: they are left out of the OpenAPI document.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import re

import stripe
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from lifecycle.billing.card_update import (
    CardUpdated,
    CardUpdateRefused,
    apply_setup,
    open_invoices,
    portal_url,
    start_setup,
    stripe_customer_of,
)
from lifecycle.billing.client import StripeNotConfigured, is_real_stripe, make_stripe_client
from lifecycle.billing.shapes import InvoiceRec
from lifecycle.contracts.money import money, money_each
from lifecycle.links import CARD_PATH, CARD_PURPOSE, BadLink, ExpiredLink, Link, read_link_token
from lifecycle.settings import Settings
from starter.pages import error_page, hidden_token, parse_form, render_page

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

# Our links are base64url body "." base64url signature, a few hundred characters.
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,1500}\.[A-Za-z0-9_-]{1,100}")
SETUP_INTENT_SHAPE = re.compile(r"seti_[A-Za-z0-9]{1,64}")
MAX_FORM_BYTES = 4096
# localstripe takes any publishable key; real Stripe never serves this form
LOCALSTRIPE_PUBLISHABLE_KEY = "pk_test_localstripe"

_UNAVAILABLE = "We could not reach our payment provider. Nothing was changed. Please try again in a few minutes."

_FORM_STYLE = (
    "<style>#card-element{display:flex;flex-wrap:wrap;gap:8px;margin:4px 0 12px}"
    "#card-element>span{display:none}"
    "#card-element input{flex:1 1 70px;min-width:0;width:auto;margin:0;padding:10px;font-size:16px;"
    "border:1px solid #9aa5b1;border-radius:4px}"
    "#card-element input:first-of-type{flex-basis:100%}"
    ".due td:last-child,.due th:last-child{text-align:right}"
    "form button{width:100%;margin-top:8px}</style>"
)


# --- the link -----------------------------------------------------------------------------


def _read_link(settings: Settings, token: str | None) -> Link | HTMLResponse:
    if not token or not TOKEN_SHAPE.fullmatch(token):
        return error_page(
            "This link is incomplete or damaged. Please open it again from your email.", 400
        )
    try:
        return read_link_token(settings.link_secret, CARD_PURPOSE, token, now=dt.datetime.now(dt.UTC))
    except ExpiredLink:
        return error_page(
            "For your security, card links work for a limited time. Please use the link in our "
            "latest email, or contact us for a new one.", 410, title="This link has expired",
        )
    except BadLink:
        return error_page(
            "This link is not a card-update link of ours, or it was changed. Please open it "
            "again from your email.", 400,
        )


def _stripe(request: Request, settings: Settings) -> stripe.StripeClient | None:
    """One Stripe client per app, built on first use (None: Stripe is not configured)."""
    client = getattr(request.app.state, "card_page_stripe", None)
    if client is None:
        try:
            client = make_stripe_client(settings, max_network_retries=2)
        except StripeNotConfigured:
            return None
        request.app.state.card_page_stripe = client
    return client


def _js(value: object) -> str:
    """A JSON value safe inside a <script> element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# --- GET: the portal, or our form ----------------------------------------------------------


@router.get(CARD_PATH, response_class=HTMLResponse)
async def card_page(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    link = _read_link(settings, request.query_params.get("token"))
    if isinstance(link, HTMLResponse):
        return link
    token = request.query_params["token"]
    client = _stripe(request, settings)
    if client is None:
        return error_page("Card updates are not available right now. Please contact us.", 503,
                          title="Card updates are unavailable")
    sessions = request.app.state.session_factory
    try:
        stripe_customer_id, _ = await run_in_threadpool(stripe_customer_of, sessions, link.customer_id)
        if is_real_stripe(settings):
            url = await run_in_threadpool(
                portal_url, client, stripe_customer_id, f"{settings.email_app_url.rstrip('/')}/billing"
            )
            return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
        return await _form(client, settings, token, stripe_customer_id)
    except CardUpdateRefused as exc:
        return error_page(str(exc), exc.code, title="We could not find your account")
    except stripe.StripeError as exc:
        log.warning("card page for %s: Stripe failed: %s", link.customer_id, exc)
        return error_page(_UNAVAILABLE, 503, title="Please try again")


async def _form(
    client: stripe.StripeClient, settings: Settings, token: str, stripe_customer_id: str,
    *, notice: str = "", code: int = 200, title: str = "Update your card",
) -> HTMLResponse:
    """Our card form (localstripe only): a fresh SetupIntent, and what is due now."""

    def prepare() -> tuple[str, list[InvoiceRec]]:
        return start_setup(client, stripe_customer_id), open_invoices(client, stripe_customer_id)

    secret, due = await run_in_threadpool(prepare)
    totals: dict[str, int] = {}  # per currency: two currencies are never added up
    for i in due:
        totals[i.currency.lower()] = totals.get(i.currency.lower(), 0) + i.amount_due_cents
    total = money_each(totals)
    rows = "".join(
        f"<tr><td>Invoice {html.escape(i.id)}</td><td>{html.escape(money(i.amount_due_cents, i.currency))}</td></tr>"
        for i in due
    )
    owed = (
        f"<table class='due'><tr><th>Due now</th><th></th></tr>{rows}</table>"
        f"<p>Your new card will be charged <strong>{html.escape(total)}</strong> "
        "for the invoices above.</p>"
        if due else "<p>Nothing is due right now: your new card will be used for your next invoice.</p>"
    )
    button = f"Save card and pay {total}" if due else "Save card"
    notice_html = f"<p class='error' role='alert'>{html.escape(notice)}</p>" if notice else ""
    js_base = f"{settings.stripe_api_base}/js.stripe.com/v3/"
    body = (
        f"{notice_html}{owed}"
        f"<form id='card-form' method='post' action='{CARD_PATH}'>"
        f"{hidden_token(token)}"
        "<input type='hidden' name='setup_intent' id='setup_intent' value=''>"
        "<label for='card-element'>Card number, expiry (MM / YY), CVC and postal code</label>"
        "<div id='card-element'></div>"
        "<p id='card-errors' class='error' role='alert'></p>"
        f"<button type='submit' id='pay'>{html.escape(button)}</button></form>"
        "<p class='muted'>Test mode: the card is handled by localstripe, not a real payment provider.</p>"
        "<script>(function(){"
        f"var stripe=Stripe({_js(LOCALSTRIPE_PUBLISHABLE_KEY)}),secret={_js(secret)};"
        "var card=stripe.elements().create('card');card.mount('#card-element');"
        # localstripe names its inputs after its fields (exp_month, ...): say what each wants
        "var names=[['Card number','1234 1234 1234 1234'],['Expiry month','MM'],['Expiry year','YY'],"
        "['CVC','CVC'],['Postal code','ZIP']];"
        "document.querySelectorAll('#card-element input').forEach(function(input,i){if(!names[i])return;"
        "input.setAttribute('aria-label',names[i][0]);input.setAttribute('placeholder',names[i][1]);"
        "input.setAttribute('inputmode','numeric');input.setAttribute('autocomplete','off');});"
        "var form=document.getElementById('card-form'),button=document.getElementById('pay'),"
        "errors=document.getElementById('card-errors');"
        "form.addEventListener('submit',async function(e){e.preventDefault();"
        "button.disabled=true;errors.textContent='';"
        "var r;try{r=await stripe.confirmCardSetup(secret,{payment_method:{card:card}});}"
        "catch(err){r={error:{message:String(err)}};}"
        "if(!r||r.error){errors.textContent=(r&&r.error&&r.error.message)||'The card could not be saved.';"
        "button.disabled=false;return;}"
        "document.getElementById('setup_intent').value=r.setupIntent.id;HTMLFormElement.prototype.submit.call(form);});"
        "})();</script>"
    )
    head = f"<script src='{html.escape(js_base)}'></script>{_FORM_STYLE}"
    return render_page(title, body, code, head=head)


# --- POST: attach, default, pay -----------------------------------------------------------


@router.post(CARD_PATH, response_class=HTMLResponse)
async def update_card(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        return error_page("That form was too large. Please open the link from your email again.", 413,
                          title="Something went wrong")
    form = parse_form(raw)
    token = form.get("token", "")
    link = _read_link(settings, token)
    if isinstance(link, HTMLResponse):
        return link
    setup_intent = form.get("setup_intent", "")
    client = _stripe(request, settings)
    if client is None:
        return error_page("Card updates are not available right now. Please contact us.", 503,
                          title="Card updates are unavailable")
    sessions = request.app.state.session_factory
    try:
        stripe_customer_id, _ = await run_in_threadpool(stripe_customer_of, sessions, link.customer_id)
        if not SETUP_INTENT_SHAPE.fullmatch(setup_intent):
            return await _form(client, settings, token, stripe_customer_id, code=400,
                               notice="Please enter your card in the form below.")
        try:
            result = await run_in_threadpool(apply_setup, client, sessions, link.customer_id, setup_intent)
        except stripe.CardError as exc:  # declined when attached
            return await _form(client, settings, token, stripe_customer_id, code=402,
                               title="Your card was declined",
                               notice=exc.user_message or "The card was declined. Please try another card.")
        except CardUpdateRefused as exc:
            return await _form(client, settings, token, stripe_customer_id, code=exc.code, notice=str(exc))
    except CardUpdateRefused as exc:
        return error_page(str(exc), exc.code, title="We could not find your account")
    except stripe.StripeError as exc:
        log.warning("card update for %s: Stripe failed: %s", link.customer_id, exc)
        return error_page(_UNAVAILABLE, 503, title="Please try again")

    await _tell_workflow(request, link.customer_id)
    if result.declined:
        reason = result.declined[0].failure_message or "The card was declined."
        return await _form(
            client, settings, token, stripe_customer_id, code=402, title="Your new card was declined",
            notice=f"Your card was saved, but the payment was declined: {reason} Please try another card.",
        )
    return _done(result)


def _done(result: CardUpdated) -> HTMLResponse:
    card = result.card
    rows = "".join(
        f"<tr><td>Invoice {html.escape(i.id)}</td><td>{html.escape(money(i.amount_cents, i.currency))}</td></tr>"
        for i in result.paid
    )
    paid = (
        f"<table class='due'><tr><th>Paid now</th><th></th></tr>{rows}</table>"
        if result.paid else "<p>Nothing was due: your new card will be used for your next invoice.</p>"
    )
    return render_page(
        "Your card is updated",
        f"<p>Your {html.escape(card.brand.title() or 'card')} ending in "
        f"<strong>{html.escape(card.last4)}</strong> (expires {card.exp_month:02d}/{card.exp_year}) "
        f"is now the card we charge.</p>{paid}<p class='muted'>You can close this page.</p>",
        head=_FORM_STYLE,
    )


async def _tell_workflow(request: Request, customer_id: str) -> None:
    """Deliver the queued card events now; if Temporal cannot take them, the relay will."""
    try:
        await request.app.state.relay.deliver_customer(customer_id)
    except Exception as exc:  # queued with the card: the relay delivers it later
        log.warning("card update of %s recorded and queued, workflow not told yet: %s", customer_id, exc)
