"""GET /v1/customers/{id}: where a customer is in the lifecycle, and what happens next.

The database answers first (in a worker thread); Temporal is asked within the deadline
(``LIFECYCLE_TEMPORAL_DEADLINE_SECONDS``), and when it cannot answer the view says
``live: false`` and shows what the database knows.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client
from temporalio.service import RPCError

from lifecycle.billing.dunning import current_view
from lifecycle.contracts.campaigns import CampaignStatus
from lifecycle.contracts.customer import CustomerState
from lifecycle.contracts.ids import customer_workflow_id
from lifecycle.contracts.ops import WhyWaiting
from lifecycle.models import Customer
from lifecycle.retention import records
from lifecycle.settings import Settings
from starter.api.deps import SessionsDep, SettingsDep, TemporalDep
from starter.api.errors import responses
from starter.api.fields import CustomerIdPath
from starter.ops.lookup import StripeLinks, latest_subscription_id, stripe_links
from starter.ops.why import NO_ANSWER, why_waiting
from workflows.customer import CustomerWorkflow

router = APIRouter(prefix="/v1/customers", tags=["customers"])


class NextStep(BaseModel):
    campaign: str
    step: str
    at: datetime | None


class DunningInvoiceView(BaseModel):
    invoice_id: str
    amount_cents: int
    currency: str
    decline_code: str | None
    hard_decline: bool


class EndActionFailing(BaseModel):
    action: str
    error: str
    since: datetime | None


class DunningView(BaseModel):
    """The customer's dunning (running, else the last one), from the database: it reads while
    Temporal is down. Written by the dunning workflow at every change."""

    workflow_id: str
    state: str
    since: datetime
    started_at: datetime
    retry_mode: str
    suspended: bool
    ended: bool
    recovered_how: str | None
    open_invoices: list[DunningInvoiceView]
    next_retry_at: datetime | None
    next_step: str | None
    next_step_at: datetime | None
    # the end action taken but not confirmed by Stripe: its call fails and is retried, and
    # Stripe keeps billing until it succeeds (state "canceling")
    end_action_failing: EndActionFailing | None = None


class RetentionView(BaseModel):
    """The retention campaigns as the entity remembers them (workflows/growth/entity.py)."""

    renewal_date: datetime | None = Field(description="the renewal whose reminders were scheduled (annual plans)")
    renewal_reminders_running: bool
    last_expansion_offer_at: datetime | None
    team_promoted_at: datetime | None


class CustomerView(BaseModel):
    id: str
    stage: str
    plan: str | None  # None: the Stripe price maps to no tier (GET .../subscription names it)
    trial_ends_at: datetime | None
    payment_method_on_file: bool
    activation_facts: list[str]
    running_campaigns: list[str]
    campaign_outcomes: dict[str, str]
    next_steps: list[NextStep]
    workflow_id: str
    workflow_url: str
    live: bool = Field(description="false when Temporal could not be asked in time; the rest comes from the database")
    dunning: DunningView | None = None
    retention: RetentionView | None = Field(default=None, description="null when Temporal could not be asked")
    created: bool = False
    queued: bool = Field(
        default=False,
        description="true: the event is recorded and queued; it reaches the workflow when Temporal answers",
    )
    stripe: StripeLinks | None = Field(
        default=None, description="the Stripe customer and subscription, with links into the Stripe dashboard"
    )
    why_waiting: WhyWaiting | None = Field(
        default=None, description="for each running campaign: its step, what it waits for, what comes next "
        "(null when Temporal could not answer in time)",
    )
    winback: dict[str, Any] = Field(
        default_factory=dict,
        description="save offers and win-back: the workflow's state (open offer, pause, win-back "
        "campaign number and variant) when live, and the recorded requests, offers and reactivations",
    )


def get_customer_or_404(session: Session, customer_id: str) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise HTTPException(404, f"unknown customer {customer_id!r}")
    return customer


async def customer_view(
    client: Client,
    settings: Settings,
    customer: Customer,
    *,
    ask_temporal: bool = True,
    stripe_subscription_id: str | None = None,
) -> CustomerView:
    """The customer as the database has it, then as the workflow has it (``live``) when
    Temporal answers within the deadline; ``ask_temporal=False``: it just did not."""
    wf_id = customer_workflow_id(customer.id)
    view: dict[str, Any] = dict(
        id=customer.id,
        stage=customer.stage,
        plan=customer.plan_code,
        trial_ends_at=customer.trial_ends_at,
        payment_method_on_file=customer.payment_method_on_file,
        activation_facts=[],
        running_campaigns=[],
        campaign_outcomes={},
        next_steps=[],
        workflow_id=wf_id,
        workflow_url=settings.temporal_ui_link(wf_id),
        live=False,
        stripe=stripe_links(settings, customer.stripe_customer_id, stripe_subscription_id),
    )
    if not ask_temporal:
        return CustomerView(**view)
    deadline = settings.temporal_deadline_seconds

    async def ask(workflow_id: str, query: Any, result_type: type | None = None) -> Any:
        handle = client.get_workflow_handle(workflow_id)
        call = handle.query(query, result_type=result_type, rpc_timeout=timedelta(seconds=deadline))
        return await asyncio.wait_for(call, timeout=deadline)

    try:
        state: CustomerState = await ask(wf_id, CustomerWorkflow.state)
    except (RPCError, RuntimeError, TimeoutError):
        return CustomerView(**view)
    view["winback"] = {"state": dataclasses.asdict(state.winback)}
    view.update(
        stage=state.stage,
        plan=state.plan or None,
        trial_ends_at=state.trial_ends_at,
        payment_method_on_file=state.payment_method_on_file,
        activation_facts=list(state.activation_facts),
        running_campaigns=sorted(state.campaigns),
        campaign_outcomes=dict(state.outcomes),
        live=True,
        retention=RetentionView(
            renewal_date=state.retention.renewal_period_end,
            renewal_reminders_running=state.retention.renewal_workflow is not None,
            last_expansion_offer_at=state.retention.last_expansion_offer_at,
            team_promoted_at=state.retention.team_promoted_at,
        ),
    )
    campaigns = sorted(state.campaigns.items())
    statuses = await asyncio.gather(
        *(ask(child_id, "status", CampaignStatus) for _c, child_id in campaigns), return_exceptions=True
    )
    for (campaign, _child), status in zip(campaigns, statuses, strict=True):
        if isinstance(status, CampaignStatus) and status.next_step:
            view["next_steps"].append(NextStep(campaign=campaign, step=status.next_step, at=status.next_step_at))
    view["stripe"] = stripe_links(
        settings, customer.stripe_customer_id, state.billing.stripe_subscription_id or stripe_subscription_id
    )
    try:
        view["why_waiting"] = await why_waiting(client, customer.id, deadline=deadline)
    except NO_ANSWER:
        pass
    return CustomerView(**view)


@router.get("/{customer_id}", response_model=CustomerView, responses=responses(401, 404, 422))
async def get_customer(
    customer_id: CustomerIdPath, sessions: SessionsDep, client: TemporalDep, settings: SettingsDep
) -> CustomerView:
    def load() -> tuple[Customer, str | None, dict[str, Any] | None, dict[str, Any]]:
        with sessions() as session:
            customer = get_customer_or_404(session, customer_id)
            return (customer, latest_subscription_id(session, customer_id), current_view(session, customer_id),
                    records.summary(session, customer_id))

    customer, subscription_id, dunning, winback = await run_in_threadpool(load)
    view = await customer_view(client, settings, customer, stripe_subscription_id=subscription_id)
    view.dunning = DunningView(**dunning) if dunning else None
    view.winback.update(winback)
    return view
