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

from lifecycle.contracts.campaigns import CampaignStatus
from lifecycle.contracts.customer import CustomerState
from lifecycle.contracts.ids import customer_workflow_id
from lifecycle.models import Customer
from lifecycle.retention import records
from lifecycle.settings import Settings
from starter.api.deps import SessionsDep, SettingsDep, TemporalDep
from starter.api.errors import responses
from starter.api.fields import CustomerIdPath
from workflows.customer import CustomerWorkflow

router = APIRouter(prefix="/v1/customers", tags=["customers"])


class NextStep(BaseModel):
    campaign: str
    step: str
    at: datetime | None


class CustomerView(BaseModel):
    id: str
    stage: str
    plan: str
    trial_ends_at: datetime | None
    payment_method_on_file: bool
    activation_facts: list[str]
    running_campaigns: list[str]
    campaign_outcomes: dict[str, str]
    next_steps: list[NextStep]
    workflow_id: str
    workflow_url: str
    live: bool = Field(description="false when Temporal could not be asked in time; the rest comes from the database")
    created: bool = False
    queued: bool = Field(
        default=False,
        description="true: the event is recorded and queued; it reaches the workflow when Temporal answers",
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
    client: Client, settings: Settings, customer: Customer, *, ask_temporal: bool = True
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
        plan=state.plan,
        trial_ends_at=state.trial_ends_at,
        payment_method_on_file=state.payment_method_on_file,
        activation_facts=list(state.activation_facts),
        running_campaigns=sorted(state.campaigns),
        campaign_outcomes=dict(state.outcomes),
        live=True,
    )
    campaigns = sorted(state.campaigns.items())
    statuses = await asyncio.gather(
        *(ask(child_id, "status", CampaignStatus) for _c, child_id in campaigns), return_exceptions=True
    )
    for (campaign, _child), status in zip(campaigns, statuses, strict=True):
        if isinstance(status, CampaignStatus) and status.next_step:
            view["next_steps"].append(NextStep(campaign=campaign, step=status.next_step, at=status.next_step_at))
    return CustomerView(**view)


@router.get("/{customer_id}", response_model=CustomerView, responses=responses(401, 404, 422))
async def get_customer(
    customer_id: CustomerIdPath, sessions: SessionsDep, client: TemporalDep, settings: SettingsDep
) -> CustomerView:
    def load() -> Customer:
        with sessions() as session:
            return get_customer_or_404(session, customer_id)

    def recorded() -> dict[str, Any]:
        with sessions() as session:
            return records.summary(session, customer_id)

    customer = await run_in_threadpool(load)
    view = await customer_view(client, settings, customer)
    view.winback.update(await run_in_threadpool(recorded))
    return view
