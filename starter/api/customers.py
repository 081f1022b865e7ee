"""GET /v1/customers/{id}: where a customer is in the lifecycle, and what happens next."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel
from sqlalchemy.orm import Session
from temporalio.client import Client
from temporalio.service import RPCError

from lifecycle.messages import CampaignStatus, CustomerState, customer_workflow_id
from lifecycle.models import Customer
from lifecycle.settings import Settings
from starter.api.deps import SessionDep, SettingsDep, TemporalDep
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
    live: bool  # False when Temporal could not be asked; the rest comes from the database
    created: bool = False


def get_customer_or_404(session: Session, customer_id: str) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise HTTPException(404, f"unknown customer {customer_id!r}")
    return customer


async def customer_view(client: Client, settings: Settings, customer: Customer) -> CustomerView:
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
    try:
        state: CustomerState = await client.get_workflow_handle(wf_id).query(CustomerWorkflow.state)
    except (RPCError, RuntimeError):
        return CustomerView(**view)
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
    for campaign, child_id in sorted(state.campaigns.items()):
        try:
            status: CampaignStatus = await client.get_workflow_handle(child_id).query(
                "status", result_type=CampaignStatus
            )
        except (RPCError, RuntimeError):
            continue
        if status.next_step:
            view["next_steps"].append(NextStep(campaign=campaign, step=status.next_step, at=status.next_step_at))
    return CustomerView(**view)


@router.get("/{customer_id}", response_model=CustomerView, responses=responses(401, 404, 422))
async def get_customer(
    customer_id: CustomerIdPath, session: SessionDep, client: TemporalDep, settings: SettingsDep
) -> CustomerView:
    customer = get_customer_or_404(session, customer_id)
    return await customer_view(client, settings, customer)
