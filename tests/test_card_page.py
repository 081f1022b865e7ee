"""The card-update page (``/billing/card``) through the API, against localstripe: a clear
page for every bad link and hostile input, the Billing Portal redirect for real Stripe (the
request as sent, on a recording server: localstripe has no portal), and our own form's
flow as the browser drives it (the SetupIntent confirmed the way localstripe's Stripe.js
does), with the invoice paid once, the card made the default and recorded for the entity.
The same flow in Chromium: tests/test_card_page_browser.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import stripe
from sqlalchemy import select

from lifecycle.billing.client import make_stripe_client
from lifecycle.billing.payment_shapes import payment_method_charged
from lifecycle.billing.shapes import to_plain
from lifecycle.contracts.billing import StartSubscriptionInput
from lifecycle.links import card_update_url, make_link_token
from lifecycle.models import CustomerCard, Invoice, SignalOutbox
from lifecycle.settings import Settings
from starter.api.app import create_app
from starter.pages import card as card_module
from tests.support.helpers import add_customer, timeline
from tests.support.stripe import FAILING_CARD, GOOD_CARD, RecordingStripe, customer_with_card

NOW = datetime.now(UTC)


@pytest.fixture
async def pages(stripe_settings: Settings, client) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(stripe_settings, temporal=client)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as http:
            yield http


def link_for(settings: Settings, cid: str, **kw: Any) -> str:
    url = card_update_url("http://api.test", settings.link_secret, cid, now=kw.pop("now", NOW),
                          ttl_days=kw.pop("ttl_days", 14))
    return url.removeprefix("http://api.test")


def assert_readable(r: httpx.Response, code: int, *phrases: str) -> None:
    assert r.status_code == code, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert "Traceback" not in r.text and "Internal Server Error" not in r.text
    for phrase in phrases:
        assert phrase in r.text


async def test_a_damaged_foreign_or_expired_link_gets_a_clear_page(pages, stripe_settings) -> None:
    secret = stripe_settings.link_secret
    good = link_for(stripe_settings, "cus-x").split("token=", 1)[1]
    body, sig = good.split(".")
    reactivate = make_link_token(secret, "reactivate", "cus-x", NOW + timedelta(days=1))
    expired = make_link_token(secret, "card", "cus-x", NOW - timedelta(seconds=1))
    for path, code, phrase in [
        ("/billing/card", 400, "incomplete or damaged"),
        ("/billing/card?token=", 400, "incomplete or damaged"),
        ("/billing/card?token=not-a-token", 400, "incomplete or damaged"),
        (f"/billing/card?token={body}.{sig[:-2]}AA", 400, "was changed"),  # tampered signature
        (f"/billing/card?token={reactivate}", 400, "not a card-update link"),  # another page's link
        (f"/billing/card?token={expired}", 410, "This link has expired"),
        ("/billing/card?token=" + "A" * 60_000 + ".B", 400, "incomplete or damaged"),  # huge
        ("/billing/card?token=%00%ff%ed%a0%80.x", 400, "incomplete or damaged"),  # NUL, bad UTF-8
        (f"/billing/card?token={good}", 404, "could not find your account"),  # no such customer
    ]:
        assert_readable(await pages.get(path), code, phrase)


async def test_hostile_posts_get_a_clear_page_and_change_nothing(pages, stripe_settings, session_factory) -> None:
    cid = "cus-hostile"
    add_customer(session_factory, cid)
    token = link_for(stripe_settings, cid).split("token=", 1)[1]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert_readable(await pages.post("/billing/card", content=b"x" * 10_000, headers=form), 413, "too large")
    assert_readable(await pages.post("/billing/card", content=b"\xff\xfe", headers=form), 400, "damaged")
    assert_readable(await pages.post("/billing/card", content=b"token=a&" * 50, headers=form), 400, "damaged")
    r = await pages.post("/billing/card", content=f"token={token}&setup_intent=seti_x", headers=form)
    assert_readable(r, 404, "no billing account")  # a customer not in Stripe yet
    with session_factory() as s:
        assert s.scalars(select(SignalOutbox).where(SignalOutbox.customer_id == cid)).all() == []


async def test_without_stripe_the_page_says_card_updates_are_unavailable(settings, client, session_factory) -> None:
    add_customer(session_factory, "cus-nostripe")
    app = create_app(settings, temporal=client)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as http:
            r = await http.get(link_for(settings, "cus-nostripe"))
    assert_readable(r, 503, "not available right now")


async def test_against_real_stripe_the_link_opens_the_billing_portal_on_the_card_update_flow(
    stripe_settings, client, session_factory, stripe_acts, stripe_client, localstripe, monkeypatch
) -> None:
    cid, stripe_customer = await customer_with_card(session_factory, stripe_acts, stripe_client)
    portal = "https://billing.stripe.com/p/session/test_lifecycle"
    rec = RecordingStripe(localstripe.url, answer_with={
        "/v1/billing_portal/sessions": {"id": "bps_1", "object": "billing_portal.session", "url": portal}}).start()
    monkeypatch.setattr(card_module, "is_real_stripe", lambda settings: True)
    try:
        app = create_app(stripe_settings.model_copy(update={"stripe_api_base": rec.url}), temporal=client)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as http:
                r = await http.get(link_for(stripe_settings, cid))
        assert r.status_code == 303 and r.headers["location"] == portal
        [sent] = rec.posts("/v1/billing_portal/sessions")
        assert sent.form["customer"] == stripe_customer
        assert sent.form["flow_data[type]"] == "payment_method_update"
        assert sent.form["return_url"] == f"{stripe_settings.email_app_url}/billing"
    finally:
        rec.stop()


def test_real_stripe_is_told_from_localstripe_by_the_api_base(settings) -> None:
    from lifecycle.billing.client import is_real_stripe

    assert is_real_stripe(settings.model_copy(update={"stripe_api_base": None}))
    assert is_real_stripe(settings.model_copy(update={"stripe_api_base": "https://api.stripe.com"}))
    assert not is_real_stripe(settings.model_copy(update={"stripe_api_base": "http://127.0.0.1:8420"}))


# --- our own form, as the browser drives it ---------------------------------------------------


def confirm_like_stripe_js(localstripe_url: str, page_html: str, number: str) -> str:
    """What localstripe's Stripe.js does on submit: confirm the page's SetupIntent with the card."""
    secret = re.search(r"secret=\"(seti_\w+_secret_\w+)\"", page_html)
    assert secret, page_html
    seti = secret.group(1).split("_secret_")[0]
    r = httpx.post(f"{localstripe_url}/v1/setup_intents/{seti}/confirm", json={
        "key": card_module.LOCALSTRIPE_PUBLISHABLE_KEY, "use_stripe_sdk": True, "client_secret": secret.group(1),
        "payment_method_data": {"type": "card", "card": {
            "number": number, "exp_month": "11", "exp_year": "2033", "cvc": "123"}},
    })
    assert r.status_code == 200, r.text
    return seti


async def failing_customer(session_factory, stripe_acts, stripe_client) -> tuple[str, str, str]:
    """A customer whose card attaches but fails every charge, with the open invoice that left."""
    cid, stripe_customer = await customer_with_card(session_factory, stripe_acts, stripe_client, card=FAILING_CARD)
    await stripe_acts.start_subscription(StartSubscriptionInput(cid, "professional", f"{cid}:subscribe"))
    [invoice] = [i for i in stripe_client.v1.invoices.list(params={"customer": stripe_customer}).data
                 if i.status == "open"]
    return cid, stripe_customer, invoice.id


async def test_a_new_card_on_our_form_becomes_the_default_and_pays_the_open_invoice_once(
    pages, stripe_settings, session_factory, stripe_acts, stripe_client: stripe.StripeClient, localstripe
) -> None:
    cid, stripe_customer, invoice_id = await failing_customer(session_factory, stripe_acts, stripe_client)
    link = link_for(stripe_settings, cid)
    page = await pages.get(link)
    assert_readable(page, 200, "Update your card", invoice_id, "<td>$49</td>", "/js.stripe.com/v3/")
    token = link.split("token=", 1)[1]

    # the new card is declined too: the decline, and the form again
    seti = confirm_like_stripe_js(localstripe.url, page.text, FAILING_CARD)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    r = await pages.post("/billing/card", content=f"token={token}&setup_intent={seti}", headers=form)
    assert_readable(r, 402, "Your new card was declined", "card-form", invoice_id)
    assert stripe_client.v1.invoices.retrieve(invoice_id).status == "open"

    # a good card: paid, default, recorded
    seti = confirm_like_stripe_js(localstripe.url, r.text, GOOD_CARD)
    r = await pages.post("/billing/card", content=f"token={token}&setup_intent={seti}", headers=form)
    assert_readable(r, 200, "Your card is updated", "ending in <strong>4242</strong>", invoice_id, "<td>$49</td>")
    assert stripe_client.v1.invoices.retrieve(invoice_id).status == "paid"
    pm = stripe_client.v1.customers.retrieve(stripe_customer).invoice_settings.default_payment_method
    assert stripe_client.v1.payment_methods.retrieve(pm).card.last4 == "4242"

    # the same form posted again (a double click, a refresh): nothing charged twice
    again = await pages.post("/billing/card", content=f"token={token}&setup_intent={seti}", headers=form)
    assert_readable(again, 200, "Your card is updated", "Nothing was due")
    paid = [i for i in stripe_client.v1.invoices.list(params={"customer": stripe_customer}).data
            if i.status == "paid"]
    assert [i.id for i in paid] == [invoice_id]

    with session_factory() as s:
        card = s.get(CustomerCard, cid)
        assert (card.stripe_payment_method_id, card.last4, card.exp_month, card.exp_year) == (pm, "4242", 11, 2033)
        assert s.scalar(select(Invoice.status).where(Invoice.stripe_invoice_id == invoice_id)) == "paid"
        kinds = [(o.kind, o.data.get("payment_method_id")) for o in s.scalars(
            select(SignalOutbox).where(SignalOutbox.customer_id == cid).order_by(SignalOutbox.id))]
    assert ("billing.default_card", pm) in kinds and ("payment_method_added", pm) in kinds
    # on the timeline once per card entered (the repeat is the same entry)
    updates = [e.detail for e in timeline(session_factory, cid) if e.kind == "card_updated"]
    assert [(u["paid"], [d["invoice"] for d in u["declined"]]) for u in updates] == [
        ([], [invoice_id]), ([{"invoice": invoice_id, "amount_cents": 4900}], [])]


async def test_a_new_card_on_our_form_replaces_a_subscriptions_own_default_card(
    stripe_settings, client, session_factory, stripe_acts, stripe_client: stripe.StripeClient, localstripe
) -> None:
    """A subscription with a default payment method of its own is charged with it, not the
    customer's default (Stripe's order). The new card becomes that subscription's default
    too, so its next invoice and every retry charge the new card. localstripe has no
    ``default_payment_method`` on subscriptions (it answers 400 to one): the recording server
    in front keeps it, as Stripe would, and the subscription is read back through it.

    So the subscription's default here is what the proxy received: the assertions on it (and
    ``payment_method_charged``, our own reading of it) check the REQUEST the page sent, not a
    charge Stripe made. "invoice paid" does not depend on the subscription update:
    localstripe pays with the customer's default, which the page also sets."""
    cid, stripe_customer, invoice_id = await failing_customer(session_factory, stripe_acts, stripe_client)
    old = str(stripe_client.v1.customers.retrieve(stripe_customer).invoice_settings.default_payment_method)
    [sub_id] = [s.id for s in stripe_client.v1.subscriptions.list(params={"customer": stripe_customer}).data]
    rec = RecordingStripe(localstripe.url, keeps=("default_payment_method",)).start()
    via = make_stripe_client(stripe_settings.model_copy(update={"stripe_api_base": rec.url}))
    via.v1.subscriptions.update(sub_id, params={"default_payment_method": old})
    assert via.v1.subscriptions.retrieve(sub_id).default_payment_method == old
    try:
        app = create_app(stripe_settings.model_copy(update={"stripe_api_base": rec.url}), temporal=client)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as http:
                link = link_for(stripe_settings, cid)
                page = await http.get(link)
                seti = confirm_like_stripe_js(localstripe.url, page.text, GOOD_CARD)
                r = await http.post("/billing/card", content=f"token={link.split('token=', 1)[1]}&setup_intent={seti}",
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert_readable(r, 200, "Your card is updated", invoice_id)
        new = str(stripe_client.v1.customers.retrieve(stripe_customer).invoice_settings.default_payment_method)
        assert new != old
        sub = via.v1.subscriptions.retrieve(sub_id)
        assert sub.default_payment_method == new
        assert stripe_client.v1.invoices.retrieve(invoice_id).status == "paid"
        # what Stripe would charge next (the subscription's default, as the proxy holds it):
        # the request's effect as read by our own function, not a localstripe charge
        customer = to_plain(via.v1.customers.retrieve(stripe_customer))
        assert payment_method_charged({}, to_plain(sub), customer) == new
        setup, changed = rec.posts(f"/v1/subscriptions/{sub_id}")  # the test's, then the page's
        assert changed.form == {"default_payment_method": new}
        assert changed.idempotency_key == f"card-page:{seti}:default:{sub_id}"
    finally:
        rec.stop()


async def test_a_setup_intent_of_another_customer_is_refused(
    pages, stripe_settings, session_factory, stripe_acts, stripe_client, localstripe
) -> None:
    mine, _ = await customer_with_card(session_factory, stripe_acts, stripe_client)
    theirs, _ = await customer_with_card(session_factory, stripe_acts, stripe_client)
    their_page = await pages.get(link_for(stripe_settings, theirs))
    seti = confirm_like_stripe_js(localstripe.url, their_page.text, GOOD_CARD)
    token = link_for(stripe_settings, mine).split("token=", 1)[1]
    r = await pages.post("/billing/card", content=f"token={token}&setup_intent={seti}",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_readable(r, 400, "belongs to another account", "card-form")
