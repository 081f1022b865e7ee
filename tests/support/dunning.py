"""Helpers for the dunning tests: a paying customer whose card fails, in localstripe and in
Temporal, and the events the Stripe webhooks would hand the entity.

The customer's entity starts as one adopted from Stripe (origin ``stripe``: no trial, no
onboarding mail), hears its subscription (active), then the failure built around the real
localstripe invoice. The dunning's retries charge that invoice for real.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import stripe
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from activities.stripe import StripeActivities
from lifecycle.contracts.billing import StartSubscriptionInput, SubscriptionResult
from lifecycle.contracts.customer import CustomerState
from lifecycle.contracts.events import (
    EventPayload,
    InvoiceActionRequired,
    InvoicePaid,
    InvoicePaymentFailed,
    InvoiceVoided,
    StripeSubscription,
    customer_event,
)
from lifecycle.contracts.ids import campaign_workflow_id, customer_workflow_id
from lifecycle.models import DunningCase, DunningRun, EmailMessage
from lifecycle.settings import Settings
from lifecycle.usage.service import UsageService
from starter.signals.send import signal_customer, start_input
from tests.support.helpers import eventually
from tests.support.stripe import FAILING_CARD, customer_with_card
from workflows.customer import CustomerWorkflow

POLICY = Path(__file__).resolve().parents[2] / "templates" / "campaigns.toml"


@dataclass
class Failing:
    """A customer on a failing card with an open invoice, its entity heard the failure."""

    cid: str
    stripe_customer: str
    sub: SubscriptionResult
    client: Client

    @property
    def invoice(self) -> str:
        assert self.sub.latest_invoice_id
        return self.sub.latest_invoice_id

    @property
    def entity(self) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(customer_workflow_id(self.cid))

    def dunning_id(self, invoice: str | None = None) -> str:
        return campaign_workflow_id(self.cid, "dunning", invoice or self.invoice)

    @property
    def dunning(self) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(self.dunning_id())

    async def tell(self, event_id: str, payload: EventPayload) -> None:
        await signal_customer(self.client, self.cid, customer_event(event_id, payload))

    async def fail(self, event_id: str = "stripe:evt_fail_1", *, invoice: str | None = None,
                   code: str | None = "card_declined", attempt: int = 1, amount: int = 9900,
                   next_attempt: Any = None) -> None:
        await self.tell(event_id, InvoicePaymentFailed(
            invoice_id=invoice or self.invoice, stripe_subscription_id=self.sub.stripe_subscription_id,
            amount_due_cents=amount, attempt_count=attempt, failure_code=code,
            next_payment_attempt=next_attempt,
        ))

    async def action_required(self, url: str, invoice: str | None = None) -> None:
        await self.tell("stripe:evt_3ds", InvoiceActionRequired(
            invoice_id=invoice or self.invoice, stripe_subscription_id=self.sub.stripe_subscription_id,
            amount_due_cents=9900, attempt_count=1, hosted_invoice_url=url,
        ))

    async def paid(self, invoice: str | None = None) -> None:
        inv = invoice or self.invoice
        await self.tell(f"stripe:invoice_paid:{inv}", InvoicePaid(
            invoice_id=inv, stripe_subscription_id=self.sub.stripe_subscription_id,
            amount_due_cents=9900, amount_paid_cents=9900,
        ))

    async def voided(self, invoice: str | None = None) -> None:
        inv = invoice or self.invoice
        await self.tell(f"stripe:invoice_voided:{inv}", InvoiceVoided(
            invoice_id=inv, stripe_subscription_id=self.sub.stripe_subscription_id, amount_due_cents=9900,
        ))

    async def state(self) -> CustomerState:
        return await self.entity.query(CustomerWorkflow.state)

    async def stage_is(self, stage: str) -> bool:
        return (await self.state()).stage == stage


async def failing_customer(
    client: Client, settings: Settings, sessions: sessionmaker[Session], acts: StripeActivities,
    stripe_client: stripe.StripeClient, *, card: str = FAILING_CARD, fail: bool = True,
) -> Failing:
    """Subscribed on ``card`` (the first charge fails: invoice open), entity active, then
    (``fail``) the invoice.payment_failed hand-over."""
    cid, stripe_cus = await customer_with_card(sessions, acts, stripe_client, card=card, prefix="dun")
    sub = await acts.start_subscription(StartSubscriptionInput(cid, "business", f"{cid}:subscribe"))
    assert sub.latest_invoice_status == "open", sub
    start = replace(start_input(settings, cid, "business"), origin="stripe")
    await signal_customer(client, cid, customer_event(f"stripe:sub:{cid}", StripeSubscription(
        stripe_subscription_id=sub.stripe_subscription_id, stripe_customer_id=stripe_cus,
        status="active", plan="business", interval="month", event_type="customer.subscription.created",
    )), start=start, task_queue=settings.task_queue)
    f = Failing(cid, stripe_cus, sub, client)
    await eventually(lambda: f.stage_is("active"))
    if fail:
        await f.fail()
    return f


async def exists(handle: WorkflowHandle[Any, Any]) -> bool:
    try:
        await handle.describe()
        return True
    except RPCError:
        return False


def mails(sessions: sessionmaker[Session], cid: str) -> list[str]:
    """The templates mailed to the customer, in order."""
    with sessions() as s:
        return list(s.scalars(
            select(EmailMessage.template).where(EmailMessage.customer_id == cid).order_by(EmailMessage.id)
        ))


def mail_texts(sessions: sessionmaker[Session], cid: str, template: str) -> list[str]:
    with sessions() as s:
        return list(s.scalars(select(EmailMessage.text).where(
            EmailMessage.customer_id == cid, EmailMessage.template == template)))


def run_row(sessions: sessionmaker[Session], workflow_id: str) -> DunningRun | None:
    """The latest run's row under this workflow id (each run keeps its own)."""
    with sessions() as s:
        return s.scalar(select(DunningRun).where(DunningRun.workflow_id == workflow_id)
                        .order_by(DunningRun.started_at.desc()).limit(1))


def run_rows(sessions: sessionmaker[Session], workflow_id: str) -> list[DunningRun]:
    """Every run's row under this workflow id, oldest first."""
    with sessions() as s:
        return list(s.scalars(select(DunningRun).where(DunningRun.workflow_id == workflow_id)
                              .order_by(DunningRun.started_at)))


def cases(sessions: sessionmaker[Session], cid: str) -> dict[str, DunningCase]:
    with sessions() as s:
        return {c.invoice_id: c for c in s.scalars(  # the latest run's case of each invoice
            select(DunningCase).where(DunningCase.customer_id == cid).order_by(DunningCase.id))}


def usage_check(sessions: sessionmaker[Session], cid: str) -> dict[str, Any]:
    return UsageService(sessions).check({"customer_id": cid, "metric": "ai_requests", "quantity": 1}).as_dict()
