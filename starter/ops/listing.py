"""``lifecycle customers list``: customers by stage, plan, dunning state, campaign and what
it waits for, through Temporal's visibility (search attributes), one page at a time.

Never a scan of the customers: each page is one visibility query. The entity carries
``LifecycleStage``, ``Plan``, ``DunningState`` and ``Campaigns`` (the campaigns running);
each campaign child carries ``Campaign``, ``WaitingFor`` and ``NextStepAt``. A
``--waiting-for`` filter lists campaign children; with ``--stage`` / ``--plan`` /
``--dunning-state`` as well, one more query per page keeps the children whose entity
matches (``CustomerId IN (…)``), so a page may hold fewer rows than its size.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import datetime

from temporalio.client import Client, WorkflowExecution

from lifecycle.contracts.ops import WAIT_KINDS
from lifecycle.contracts.search_attributes import (
    CAMPAIGN,
    CAMPAIGNS,
    CUSTOMER_ID,
    DUNNING_STATE,
    LIFECYCLE_STAGE,
    NEXT_STEP_AT,
    PLAN,
    WAITING_FOR,
)

VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$")  # nothing that could break out of '…'


class BadFilter(ValueError):
    """A filter value that cannot go into a visibility query."""


@dataclass
class Filters:
    stage: str | None = None
    plan: str | None = None
    campaign: str | None = None
    waiting_for: str | None = None
    dunning_state: str | None = None

    def check(self) -> None:
        for name, value in vars(self).items():
            if value is not None and not VALUE.match(value):
                raise BadFilter(f"--{name.replace('_', '-')}: {value!r} is not a name (letters, digits, _ . : @ / -)")
        if self.waiting_for and self.waiting_for not in WAIT_KINDS:
            raise BadFilter(f"--waiting-for: expected one of {', '.join(WAIT_KINDS)}")


@dataclass
class Row:
    customer_id: str
    workflow_id: str
    stage: str | None = None
    plan: str | None = None
    campaigns: list[str] = field(default_factory=list)
    campaign: str | None = None
    waiting_for: str | None = None
    next_step_at: datetime | None = None


@dataclass
class Page:
    rows: list[Row]
    next_page_token: str | None  # opaque; pass it back for the next page
    query: str


def _entity_clauses(f: Filters) -> list[str]:
    clauses = []
    if f.stage:
        clauses.append(f"{LIFECYCLE_STAGE.name} = '{f.stage}'")
    if f.plan:
        clauses.append(f"{PLAN.name} = '{f.plan}'")
    if f.dunning_state:
        clauses.append(f"{DUNNING_STATE.name} = '{f.dunning_state}'")
    return clauses


def entity_query(f: Filters, customer_ids: list[str] | None = None) -> str:
    clauses = ["WorkflowType = 'CustomerWorkflow'", "ExecutionStatus = 'Running'", *_entity_clauses(f)]
    if f.campaign and f.waiting_for is None:
        clauses.append(f"{CAMPAIGNS.name} = '{f.campaign}'")
    if customer_ids is not None:
        listed = ", ".join(f"'{c}'" for c in customer_ids if VALUE.match(c))
        clauses.append(f"{CUSTOMER_ID.name} IN ({listed})")
    return " AND ".join(clauses)


def campaign_query(f: Filters) -> str:
    clauses = ["ExecutionStatus = 'Running'", f"{WAITING_FOR.name} = '{f.waiting_for}'"]
    if f.campaign:
        clauses.append(f"{CAMPAIGN.name} = '{f.campaign}'")
    return " AND ".join(clauses)


def _entity_row(wf: WorkflowExecution) -> Row:
    attrs = wf.typed_search_attributes
    return Row(
        customer_id=attrs.get(CUSTOMER_ID) or wf.id.removeprefix("customer-"),
        workflow_id=wf.id,
        stage=attrs.get(LIFECYCLE_STAGE),
        plan=attrs.get(PLAN),
        campaigns=list(attrs.get(CAMPAIGNS) or []),
    )


def _campaign_row(wf: WorkflowExecution) -> Row:
    attrs = wf.typed_search_attributes
    return Row(
        customer_id=attrs.get(CUSTOMER_ID) or "",
        workflow_id=wf.id,
        campaign=attrs.get(CAMPAIGN),
        waiting_for=attrs.get(WAITING_FOR),
        next_step_at=attrs.get(NEXT_STEP_AT),
    )


async def _page(client: Client, query: str, size: int, token: str | None) -> tuple[list[WorkflowExecution], str | None]:
    it = client.list_workflows(
        query, page_size=size, next_page_token=base64.urlsafe_b64decode(token) if token else None
    )
    await it.fetch_next_page()
    nxt = it.next_page_token
    return list(it.current_page or []), base64.urlsafe_b64encode(nxt).decode() if nxt else None


async def list_customers(client: Client, f: Filters, *, page_size: int = 50, page_token: str | None = None) -> Page:
    f.check()
    if f.waiting_for is None:
        query = entity_query(f)
        found, nxt = await _page(client, query, page_size, page_token)
        return Page([_entity_row(wf) for wf in found], nxt, query)
    query = campaign_query(f)
    found, nxt = await _page(client, query, page_size, page_token)
    rows = [_campaign_row(wf) for wf in found]
    if rows and _entity_clauses(f):  # keep the children whose customer matches the entity's filters
        entities, _ = await _page(client, entity_query(f, [r.customer_id for r in rows]), len(rows), None)
        known = {row.customer_id: row for row in map(_entity_row, entities)}
        rows = [r for r in rows if r.customer_id in known]
        for r in rows:
            r.stage, r.plan = known[r.customer_id].stage, known[r.customer_id].plan
    return Page(rows, nxt, query)
