"""The card-update page in Debian's Chromium, driven by Playwright, on the real stack (dev
server, `lifecycle worker`, `lifecycle api`) against a localstripe of its own whose signed
webhooks reach the API: a customer whose card (4000000000000341) attached but failed the
first charge opens the link, types 4242 4242 4242 4242 into the form built on localstripe's
Stripe.js and submits; the success page shows the invoice paid, Stripe has it paid with the
new default card, the invoice's payment webhook reaches the engine, and the entity holds the
new card (its expiry reminders scheduled). Screenshots at desktop width and at 320 px are
written to the test's temporary folder (card-*.png)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from lifecycle.billing.catalog_sync import sync_catalog
from lifecycle.billing.client import make_stripe_client
from lifecycle.contracts.ids import customer_workflow_id
from lifecycle.links import card_update_url
from lifecycle.models import StripeEvent
from lifecycle.settings import UNSAFE_LINK_SECRET
from starter.dev.localstripe import LocalStripe, start_localstripe
from tests.conftest import Stack
from tests.support.helpers import eventually
from tests.support.stripe import FAILING_CARD, WEBHOOK_SECRET
from tests.test_browser import browser  # noqa: F401  # the Chromium fixture
from workflows.customer import CustomerWorkflow

pytestmark = pytest.mark.e2e
KEY = "sk_test_card_page"


@pytest.fixture
def own_localstripe() -> Iterator[LocalStripe]:
    """Its own localstripe: its webhooks go to this test's API only."""
    with start_localstripe() as handle:
        yield handle


@pytest.fixture
def stack_env(own_localstripe: LocalStripe) -> dict[str, str]:
    return {
        "LIFECYCLE_STRIPE_API_KEY": KEY,
        "LIFECYCLE_STRIPE_API_BASE": own_localstripe.url,
        "LIFECYCLE_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "LIFECYCLE_STRIPE_LOCALSTRIPE_COMPAT": "true",
    }


async def test_a_customer_with_a_failed_invoice_updates_the_card_in_chromium_and_the_invoice_is_paid(
    stack: Stack, dev_env, browser, session_factory, own_localstripe: LocalStripe, tmp_path  # noqa: F811
) -> None:
    own_localstripe.register_webhook(f"{stack.url}/webhooks/stripe", WEBHOOK_SECRET)
    stripe = make_stripe_client(stack.settings.model_copy(update={
        "stripe_api_key": SecretStr(KEY), "stripe_api_base": own_localstripe.url}))
    sync_catalog(stripe, session_factory)

    # a customer who subscribes with a card that attaches but fails every charge
    r = await stack.http.post("/v1/events/signup", json={
        "customer_id": "card-1", "email": "grace@card.test", "name": "Grace Hopper"})
    assert r.status_code == 201, r.text
    failing = stripe.v1.payment_methods.create(params={
        "type": "card", "card": {"number": FAILING_CARD, "exp_month": 1, "exp_year": 2030, "cvc": "123"}})
    r = await stack.http.post("/v1/customers/card-1/subscription", json={
        "plan": "professional", "interval": "month", "payment_method_id": failing.id})
    assert r.status_code in (201, 402), r.text
    stripe_customer = await eventually(lambda: _stripe_customer(session_factory, "card-1"), timeout=20)
    [invoice] = [i for i in stripe.v1.invoices.list(params={"customer": stripe_customer}).data if i.status == "open"]

    # the link from an email, opened in the browser
    link = card_update_url(stack.url, UNSAFE_LINK_SECRET, "card-1", now=dt.datetime.now(dt.UTC), ttl_days=14)
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text))
    await page.goto(link)
    assert await page.locator("h1").inner_text() == "Update your card"
    assert re.search(r"\$49(?![\d.,])", await page.locator("table.due").inner_text())
    await page.screenshot(path=str(tmp_path / "card-form-desktop.png"), full_page=True)
    await page.set_viewport_size({"width": 320, "height": 640})
    await page.screenshot(path=str(tmp_path / "card-form-320.png"), full_page=True)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 320, f"the form is {width}px wide at a 320px viewport"

    card = page.locator("#card-element")
    await card.get_by_label("Card number").fill("4242424242424242")
    await card.get_by_label("Expiry month").fill("12")
    await card.get_by_label("Expiry year").fill("34")
    await card.get_by_label("CVC").fill("123")
    await card.get_by_label("Postal code").fill("10001")
    await page.get_by_role("button", name="Save card and pay $49").click()
    done = page.locator("h1", has_text="Your card is updated")
    refused = page.locator("#card-errors:not(:empty)")
    await done.or_(refused).wait_for()
    assert await done.is_visible(), f"{await refused.inner_text()} (console: {console})"
    text = await page.locator("body").inner_text()
    assert "ending in 4242" in text and invoice.id in text and re.search(r"\$49(?![\d.,])", text)
    await page.screenshot(path=str(tmp_path / "card-done-320.png"), full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 800})
    await page.screenshot(path=str(tmp_path / "card-done-desktop.png"), full_page=True)

    # Stripe: paid, with the new card as the default
    assert stripe.v1.invoices.retrieve(invoice.id).status == "paid"
    default = stripe.v1.customers.retrieve(stripe_customer).invoice_settings.default_payment_method
    assert stripe.v1.payment_methods.retrieve(default).card.last4 == "4242"

    # localstripe's signed invoice.payment_succeeded (the engine's "invoice paid") reaches the API
    def paid_event() -> bool:
        with session_factory() as s:
            return any(e.status == "processed" and e.payload["data"]["object"]["id"] == invoice.id
                       for e in s.scalars(select(StripeEvent).where(StripeEvent.type == "invoice.payment_succeeded")))

    await eventually(paid_event, timeout=30)
    handle = dev_env.client.get_workflow_handle(customer_workflow_id("card-1"))

    async def heard() -> bool:
        state = await handle.query(CustomerWorkflow.state)
        return (f"stripe:invoice_paid:{invoice.id}" in state.seen_event_ids
                and state.card is not None and state.card.last4 == "4242"
                and state.card.reminders_workflow_id == "customer-card-1/card-expiry/2034-12")

    await eventually(heard, timeout=30)


def _stripe_customer(session_factory, cid: str) -> str | None:
    from lifecycle.models import Customer

    with session_factory() as s:
        row = s.get(Customer, cid)
        return row.stripe_customer_id if row is not None else None
