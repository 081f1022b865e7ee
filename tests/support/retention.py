"""Shared by the retention tests: the API and a worker with the real activities on the
time-skipping server, Stripe = localstripe behind the recording proxy (so every request
the engine sent can be checked, including what localstripe cannot take: discounts,
pause_collection), and a few steps a customer takes."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import stripe
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from lifecycle.contracts.customer import CustomerState
from lifecycle.contracts.ids import customer_workflow_id
from lifecycle.models import CancellationRequest, EmailMessage, Reactivation, SaveOfferRow
from lifecycle.settings import Settings
from starter.api.app import create_app
from tests.support.helpers import emails
from tests.support.stripe import RecordingStripe, new_customer_id, signed_event, signed_up
from worker import build_worker
from workflows.customer import CustomerWorkflow

AUTH = {"Authorization": "Bearer test-key"}
PUBLIC_URL = "http://pages.localhost"  # loopback by name: development settings
STRIPPED = ("proration_behavior", "discounts", "pause_collection")


@dataclass
class Retained:
    http: httpx.AsyncClient
    client: Client
    settings: Settings
    sessions: sessionmaker[Session]
    stripe: RecordingStripe

    async def state(self, cid: str) -> CustomerState:
        return await self.client.get_workflow_handle(customer_workflow_id(cid)).query(CustomerWorkflow.state)

    async def subscriber(self, plan: str = "professional", prefix: str = "ret", interval: str = "month") -> str:
        """A customer who signed up and subscribed with a good card."""
        cid = new_customer_id(prefix)
        await signed_up(self.client, self.settings, self.sessions, cid)
        r = await self.http.post(f"/v1/customers/{cid}/subscription",
                                 json={"plan": plan, "interval": interval, "payment_method_id": "pm_card_visa"})
        assert r.status_code == 201, r.text
        return cid

    def offers(self, cid: str) -> list[SaveOfferRow]:
        with self.sessions() as s:
            return list(s.scalars(select(SaveOfferRow).where(SaveOfferRow.customer_id == cid)))

    def requests(self, cid: str) -> list[CancellationRequest]:
        with self.sessions() as s:
            return list(s.scalars(
                select(CancellationRequest).where(CancellationRequest.customer_id == cid)
                .order_by(CancellationRequest.requested_at)
            ))

    def reactivations(self, cid: str) -> list[Reactivation]:
        with self.sessions() as s:
            return list(s.scalars(select(Reactivation).where(Reactivation.customer_id == cid)))

    def winback_emails(self, cid: str) -> list[EmailMessage]:
        return [m for m in emails(self.sessions, cid) if m.campaign == "winback" and m.status == "sent"]


async def period_end(ret: Retained, stripe_client: stripe.StripeClient, sub_id: str) -> None:
    """What Stripe's billing does when the subscription's current period ends, which
    localstripe (no billing clock) never does by itself: a subscription set to cancel at
    the period end ends (``customer.subscription.deleted``); any other renews, its next
    period's invoice charged to the default card. The engine hears it by signed webhook."""
    sub = stripe_client.v1.subscriptions.retrieve(sub_id)
    if sub.cancel_at_period_end:
        stripe_client.v1.subscriptions.cancel(sub_id)
        kind = "customer.subscription.deleted"
    else:
        invoice = stripe_client.v1.invoices.create(params={"customer": str(sub.customer), "subscription": sub_id})
        stripe_client.v1.invoices.pay(str(invoice.id))
        kind = "customer.subscription.updated"
    _e, body, headers = signed_event(kind, stripe_client.v1.subscriptions.retrieve(sub_id),
                                     created=int(time.time()) + 5)
    r = await ret.http.post("/webhooks/stripe", content=body, headers=headers)
    assert r.status_code == 200, r.text


def reactivate_link(message: EmailMessage) -> str:
    """The reactivation link of a win-back email, as the customer clicks it."""
    found = re.search(r'href="([^"]*/billing/reactivate\?token=[^"]+)"', message.html)
    assert found, "no reactivation link in the email"
    return found.group(1).replace("&amp;", "&")


def retention_settings(stripe_settings: Settings, rec: RecordingStripe, public_url: str = PUBLIC_URL) -> Settings:
    """Stripe through the recording proxy, with nothing left out by the engine itself (the
    proxy drops what localstripe cannot take), pages at ``public_url``."""
    return stripe_settings.model_copy(
        update={"stripe_api_base": rec.url, "stripe_localstripe_compat": False, "public_url": public_url}
    )


@pytest.fixture
def recording_stripe(stripe_settings: Settings, localstripe: object) -> Iterator[RecordingStripe]:
    rec = RecordingStripe(stripe_settings.stripe_api_base or "", strip=STRIPPED).start()
    try:
        yield rec
    finally:
        rec.stop()


@pytest.fixture
async def retained(
    stripe_settings: Settings, client: Client, session_factory: sessionmaker[Session], synced: object,
    recording_stripe: RecordingStripe,
) -> AsyncIterator[Retained]:
    settings = retention_settings(stripe_settings, recording_stripe)
    app = create_app(settings, temporal=client)
    async with build_worker(client, settings, session_factory), app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL, headers=AUTH, timeout=60
        ) as http:
            yield Retained(http, client, settings, session_factory, recording_stripe)
