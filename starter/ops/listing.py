"""``lifecycle customers list``: customers by stage, plan, dunning state, campaign, what
their campaigns wait for and when they next act, through Temporal's visibility (search
attributes), one page at a time.

Never a scan of the customers: each page is one visibility query on the entities, which
carry ``LifecycleStage``, ``Plan``, ``DunningState``, ``Campaigns`` (the campaigns
running), ``Waits`` (what they wait for: each kind, and ``campaign:kind``) and
``NextStepAt`` (the earliest next step of all of them), so a page holds ``page_size``
rows whatever the filters. An entity whose campaigns all started before the
``campaign-reports-waits`` patch has no ``Waits`` yet: it is listed by stage, plan and
campaign, not by what it waits for.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from temporalio.client import Client, WorkflowExecution

from lifecycle.contracts.ops import WAIT_KINDS
from lifecycle.contracts.search_attributes import (
    CAMPAIGNS,
    CUSTOMER_ID,
    DUNNING_STATE,
    LIFECYCLE_STAGE,
    NEXT_STEP_AT,
    NO_NEXT_STEP,
    PLAN,
    WAITS,
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
    next_step_before: datetime | None = None  # a campaign acts before this time (UTC)

    def check(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, str) and not VALUE.match(value):
                raise BadFilter(f"--{name.replace('_', '-')}: {value!r} is not a name (letters, digits, _ . : @ / -)")
        if self.waiting_for and self.waiting_for not in WAIT_KINDS:
            raise BadFilter(f"--waiting-for: expected one of {', '.join(WAIT_KINDS)}")
        if self.next_step_before is not None and self.next_step_before.tzinfo is None:
            self.next_step_before = self.next_step_before.replace(tzinfo=UTC)  # the CLI's times are UTC


@dataclass
class Row:
    customer_id: str
    workflow_id: str
    stage: str | None = None
    plan: str | None = None
    campaigns: list[str] = field(default_factory=list)
    waits: list[str] = field(default_factory=list)  # kinds, and campaign:kind
    next_step_at: datetime | None = None  # None: no campaign waits on a time

    def waiting(self, campaign: str | None = None) -> list[str]:
        """What its campaigns wait for, as ``campaign: kind`` (only ``campaign``'s if named)."""
        pairs = [w.split(":", 1) for w in self.waits if ":" in w]
        return [f"{c}: {k}" for c, k in pairs if campaign is None or c == campaign]


@dataclass
class Page:
    rows: list[Row]
    next_page_token: str | None  # opaque; pass it back for the next page
    query: str


def query(f: Filters) -> str:
    """The one visibility query of a page (values checked by ``Filters.check``)."""
    clauses = ["WorkflowType = 'CustomerWorkflow'", "ExecutionStatus = 'Running'"]
    if f.stage:
        clauses.append(f"{LIFECYCLE_STAGE.name} = '{f.stage}'")
    if f.plan:
        clauses.append(f"{PLAN.name} = '{f.plan}'")
    if f.dunning_state:
        clauses.append(f"{DUNNING_STATE.name} = '{f.dunning_state}'")
    if f.waiting_for:
        wait = f"{f.campaign}:{f.waiting_for}" if f.campaign else f.waiting_for
        clauses.append(f"{WAITS.name} = '{wait}'")
    elif f.campaign:
        clauses.append(f"{CAMPAIGNS.name} = '{f.campaign}'")
    if f.next_step_before is not None:
        at = f.next_step_before.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        clauses.append(f"{NEXT_STEP_AT.name} < '{at}'")
    return " AND ".join(clauses)


def _row(wf: WorkflowExecution) -> Row:
    attrs = wf.typed_search_attributes
    next_at = attrs.get(NEXT_STEP_AT)
    return Row(
        customer_id=attrs.get(CUSTOMER_ID) or wf.id.removeprefix("customer-"),
        workflow_id=wf.id,
        stage=attrs.get(LIFECYCLE_STAGE),
        plan=attrs.get(PLAN),
        campaigns=list(attrs.get(CAMPAIGNS) or []),
        waits=list(attrs.get(WAITS) or []),
        next_step_at=None if next_at is None or next_at >= NO_NEXT_STEP else next_at,
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
    q = query(f)
    found, nxt = await _page(client, q, page_size, page_token)
    return Page([_row(wf) for wf in found], nxt, q)
