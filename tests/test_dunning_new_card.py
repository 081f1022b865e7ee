"""A card updated anywhere (the Billing Portal, Stripe's dashboard, the product) during
dunning, retry mode engine: Stripe's webhooks for it (``customer.updated`` with the new
default, ``payment_method.attached``, ``setup_intent.succeeded``; built around the real
localstripe objects and signed, as localstripe sends only ``customer.updated`` and that
without ``previous_attributes``) reach the running dunning through the API, the mirror and
the entity, and the open invoice is retried at once with the new card, once per card.
Real activities against localstripe, the time-skipping server, no time skipped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import stripe
from sqlalchemy import select

from lifecycle.billing.shapes import to_plain
from lifecycle.models import Invoice, Payment
from starter.api.app import create_app
from tests.support.dunning import cases, exists, failing_customer
from tests.support.helpers import eventually, timeline
from tests.support.stripe import FAILING_CARD, GOOD_CARD, add_card, charges, signed_event
from worker import build_worker
from workflows.dunning import DunningWorkflow

AUTH = {"Authorization": "Bearer test-key"}


@pytest.fixture
async def api(stripe_settings, client, session_factory, synced) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(stripe_settings, temporal=client)
    async with build_worker(client, stripe_settings, session_factory), app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test", headers=AUTH, timeout=60
        ) as http:
            yield http


async def _webhook(api: httpx.AsyncClient, type: str, obj: Any, **kw: Any) -> str:
    event, body, headers = signed_event(type, obj, **kw)
    r = await api.post("/webhooks/stripe", content=body, headers=headers)
    assert r.status_code == 200, r.text
    return str(event["id"])


def _card_retries(session_factory, cid: str) -> list[tuple[str, str]]:
    return [(e.detail["retry"], e.detail["outcome"]) for e in timeline(session_factory, cid)
            if e.kind == "dunning_retry"]


async def test_a_new_default_card_pays_the_open_invoice_at_once_and_each_card_is_charged_once(
    ts_env, api, client, session_factory, stripe_acts, stripe_client, stripe_settings
):
    f = await failing_customer(client, stripe_settings, session_factory, stripe_acts, stripe_client)
    await eventually(lambda: exists(f.dunning))
    assert charges(stripe_client, f.stripe_customer) == 1  # the subscription's first charge

    # 1. A new default that fails too (localstripe's own customer.updated: no previous
    #    attributes): retried at once, declined; the same card heard again through the
    #    other two events charges nothing more.
    x = add_card(stripe_client, f.stripe_customer, FAILING_CARD)
    await _webhook(api, "customer.updated", stripe_client.v1.customers.retrieve(f.stripe_customer))
    await eventually(lambda: _card_retries(session_factory, f.cid) == [("card_update", "declined")])
    assert charges(stripe_client, f.stripe_customer) == 2
    await _webhook(api, "payment_method.attached", stripe_client.v1.payment_methods.retrieve(x))
    intent = stripe_client.v1.setup_intents.create(params={"customer": f.stripe_customer})
    intent = stripe_client.v1.setup_intents.confirm(intent.id, params={"payment_method": x})
    await _webhook(api, "setup_intent.succeeded", intent)

    # 2. A good card: attached first (not the default yet: nothing charged with it), then
    #    made the default in Stripe's shape (previous_attributes): paid at once.
    y = add_card(stripe_client, f.stripe_customer, GOOD_CARD, default=False)
    await _webhook(api, "payment_method.attached", stripe_client.v1.payment_methods.retrieve(y))
    stripe_client.v1.customers.update(f.stripe_customer, params={"invoice_settings": {"default_payment_method": y}})
    await _webhook(api, "customer.updated", stripe_client.v1.customers.retrieve(f.stripe_customer),
                   previous_attributes={"invoice_settings": {"default_payment_method": x}})

    assert await f.dunning.result() == "recovered"
    assert _card_retries(session_factory, f.cid) == [("card_update", "declined"), ("card_update", "paid")]
    assert stripe_client.v1.invoices.retrieve(f.invoice).status == "paid"
    with session_factory() as s:
        mirrored = s.scalar(select(Invoice).where(Invoice.stripe_invoice_id == f.invoice))
        assert mirrored is not None and mirrored.status == "paid"
    assert cases(session_factory, f.cid)[f.invoice].how == "card_update"
    await eventually(lambda: f.stage_is("active"))
    assert charges(stripe_client, f.stripe_customer) == 3  # one per card, none for the repeats

    await _webhook(api, "payment_method.attached", stripe_client.v1.payment_methods.retrieve(y))  # heard again
    await eventually(lambda: f.stage_is("active"))
    assert charges(stripe_client, f.stripe_customer) == 3


async def test_a_hard_declined_invoice_is_paid_at_once_with_the_card_the_product_reports(
    ts_env, api, client, session_factory, stripe_acts, stripe_client, stripe_settings
):
    """A hard decline is never retried on schedule; a new card is another matter. The
    product reports it (``POST /v1/customers/{id}/payment-method``) after making it the
    default in Stripe: the invoice is charged with it at once."""
    f = await failing_customer(client, stripe_settings, session_factory, stripe_acts, stripe_client, fail=False)
    await f.fail(code="expired_card")
    await eventually(lambda: exists(f.dunning))
    y = add_card(stripe_client, f.stripe_customer, GOOD_CARD)
    r = await api.post(f"/v1/customers/{f.cid}/payment-method", json={"payment_method_id": y})
    assert r.status_code == 202, r.text
    assert await f.dunning.result() == "recovered"
    assert _card_retries(session_factory, f.cid) == [("card_update", "paid")]
    assert stripe_client.v1.invoices.retrieve(f.invoice).status == "paid"
    assert charges(stripe_client, f.stripe_customer) == 2


async def _hard_decline_mirrored(api: httpx.AsyncClient, stripe_client: stripe.StripeClient, f: Any,
                                 code: str = "expired_card") -> str:
    """The invoice's first charge, on the customer's default card, hard-declined as Stripe
    does an expired (``code``) card (``payment_intent.payment_failed`` around localstripe's real payment intent,
    whose own decline is the generic card_declined); the entity hears the failure. The card."""
    card = str(stripe_client.v1.customers.retrieve(f.stripe_customer).invoice_settings.default_payment_method)
    invoice = stripe_client.v1.invoices.retrieve(f.invoice)
    intent = to_plain(stripe_client.v1.payment_intents.retrieve(str(invoice.payment_intent)))
    assert intent["payment_method"] == card and intent["invoice"] == f.invoice
    intent["status"] = "requires_payment_method"
    intent["last_payment_error"] = {"type": "card_error", "code": "card_declined", "decline_code": code,
                                    "message": "Your card was declined."}
    await _webhook(api, "payment_intent.payment_failed", intent)
    await f.fail(code=code)
    return card


async def test_a_card_that_hard_declined_the_invoice_is_not_charged_again_when_heard_again(
    ts_env, api, client, session_factory, stripe_acts, stripe_client, stripe_settings
):
    """The customer saves the same expired card again (a SetupIntent for it): the retry for
    it finds, in the payments mirror, that its last attempt on the invoice was a hard
    decline, and charges nothing (outcome card_hard_declined); the invoice stays open."""
    f = await failing_customer(client, stripe_settings, session_factory, stripe_acts, stripe_client, fail=False)
    card = await _hard_decline_mirrored(api, stripe_client, f)
    await eventually(lambda: exists(f.dunning))
    with session_factory() as s:
        (payment,) = s.scalars(select(Payment).where(Payment.stripe_invoice_id == f.invoice))
        assert (payment.payment_method_id, payment.failure_code) == (card, "expired_card")

    intent = stripe_client.v1.setup_intents.create(params={"customer": f.stripe_customer})
    intent = stripe_client.v1.setup_intents.confirm(intent.id, params={"payment_method": card})
    await _webhook(api, "setup_intent.succeeded", intent)

    await eventually(lambda: _card_retries(session_factory, f.cid) == [("card_update", "card_hard_declined")])
    assert charges(stripe_client, f.stripe_customer) == 1  # the subscription's first charge only
    assert stripe_client.v1.invoices.retrieve(f.invoice).status == "open"
    with session_factory() as s:
        assert s.scalar(select(Invoice.status).where(Invoice.stripe_invoice_id == f.invoice)) == "open"


async def test_a_card_the_network_updated_is_a_new_card_and_is_charged_again(
    ts_env, api, client, session_factory, stripe_acts, stripe_client, stripe_settings
):
    """Stripe's card account updater gives the hard-declined card a new expiry, same payment
    method (``payment_method.automatically_updated``): a card change, like an attach. The
    open invoice is retried at once with it, once (localstripe cannot renew a card: the
    test card declines again, as card_declined)."""
    f = await failing_customer(client, stripe_settings, session_factory, stripe_acts, stripe_client, fail=False)
    card = await _hard_decline_mirrored(api, stripe_client, f)
    await eventually(lambda: exists(f.dunning))

    renewed = to_plain(stripe_client.v1.payment_methods.retrieve(card))
    renewed["card"]["exp_year"] = int(renewed["card"]["exp_year"]) + 3
    await _webhook(api, "payment_method.automatically_updated", renewed)

    await eventually(lambda: _card_retries(session_factory, f.cid) == [("card_update", "declined")])
    assert charges(stripe_client, f.stripe_customer) == 2  # the first charge, and the updated card's
    await _webhook(api, "payment_method.automatically_updated", renewed)  # heard again: once per card
    await eventually(lambda: f.stage_is("past_due"))
    assert charges(stripe_client, f.stripe_customer) == 2


async def test_a_card_that_charged_nothing_is_retried_once_really_updated_and_the_skip_is_no_attempt(
    ts_env, api, client, session_factory, stripe_acts, stripe_client, stripe_settings
):
    """The hard-declined card heard again unchanged (a SetupIntent) charges nothing
    (card_hard_declined): that is not a retry of the card, nor an attempt on the invoice. When
    the card network then renews it (``payment_method.automatically_updated``), the open
    invoice is charged with it at once (localstripe's test card declines again)."""
    f = await failing_customer(client, stripe_settings, session_factory, stripe_acts, stripe_client, fail=False)
    card = await _hard_decline_mirrored(api, stripe_client, f)
    await eventually(lambda: exists(f.dunning))

    async def invoices() -> list[Any]:
        return list((await f.dunning.query(DunningWorkflow.details)).invoices)

    async def attempts() -> int:
        (inv,) = await eventually(invoices)  # the run lists its invoice once it has read it
        return inv.attempt_count

    before = await attempts()
    intent = stripe_client.v1.setup_intents.create(params={"customer": f.stripe_customer})
    intent = stripe_client.v1.setup_intents.confirm(intent.id, params={"payment_method": card})
    await _webhook(api, "setup_intent.succeeded", intent)
    await eventually(lambda: _card_retries(session_factory, f.cid) == [("card_update", "card_hard_declined")])
    assert await attempts() == before  # nothing was charged: no attempt
    assert charges(stripe_client, f.stripe_customer) == 1

    renewed = to_plain(stripe_client.v1.payment_methods.retrieve(card))
    renewed["card"]["exp_year"] = int(renewed["card"]["exp_year"]) + 3
    await _webhook(api, "payment_method.automatically_updated", renewed)

    await eventually(lambda: _card_retries(session_factory, f.cid)
                     == [("card_update", "card_hard_declined"), ("card_update", "declined")])
    assert charges(stripe_client, f.stripe_customer) == 2  # the first charge, and the renewed card's
    assert await attempts() == before + 1
    assert stripe_client.v1.invoices.retrieve(f.invoice).status == "open"


@pytest.mark.parametrize(("previous", "retry", "charged"), [
    # an edit of the billing details (the Billing Portal, ours): the card is what it was
    ({"billing_details": {"address": {"line1": None, "postal_code": None}}}, "card_hard_declined", 1),
    # a new expiry typed in for the same payment method: the card changed
    ({"card": {"exp_month": 12, "exp_year": 2034}}, "declined", 2),
], ids=["billing-details", "new-expiry"])
async def test_a_hard_declined_card_is_charged_again_only_when_the_card_itself_changed(
    ts_env, api, client, session_factory, stripe_acts, stripe_client, stripe_settings, previous, retry, charged
):
    """``payment_method.updated`` fires for any edit of a payment method (Stripe's "Update a
    PaymentMethod": billing details, metadata, a card's expiry). The stolen card's decline
    holds after an edit of its billing address: the retry for it (the customer saves it
    again) charges nothing, localstripe's charges stay at the subscription's first. A new
    expiry (``previous_attributes.card``) is a changed card: it is charged again (and
    localstripe declines it, as card_declined)."""
    f = await failing_customer(client, stripe_settings, session_factory, stripe_acts, stripe_client, fail=False)
    card = await _hard_decline_mirrored(api, stripe_client, f, code="stolen_card")
    await eventually(lambda: exists(f.dunning))

    edited = to_plain(stripe_client.v1.payment_methods.retrieve(card))
    if "card" in previous:
        edited["card"]["exp_year"] = int(edited["card"]["exp_year"]) + 2
    else:
        edited["billing_details"]["address"] = {**(edited["billing_details"].get("address") or {}),
                                                "line1": "1 New Street", "postal_code": "10115"}
    await _webhook(api, "payment_method.updated", edited, previous_attributes=previous)
    intent = stripe_client.v1.setup_intents.create(params={"customer": f.stripe_customer})
    intent = stripe_client.v1.setup_intents.confirm(intent.id, params={"payment_method": card})
    await _webhook(api, "setup_intent.succeeded", intent)

    await eventually(lambda: _card_retries(session_factory, f.cid) == [("card_update", retry)])
    assert charges(stripe_client, f.stripe_customer) == charged
    assert stripe_client.v1.invoices.retrieve(f.invoice).status == "open"
