"""Why-waiting, assembled on the starter side: the entity's ``waiting`` answer, each
campaign's own answer, and what Temporal's describe says of pending activities (a
retrying activity's attempt count and last error: workflow code cannot see those).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta

from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError

from lifecycle.contracts.campaigns import CampaignStatus
from lifecycle.contracts.ids import customer_workflow_id
from lifecycle.contracts.ops import (
    WAIT_ACTIVITY,
    WAIT_NOTHING,
    WAIT_TIMER,
    WAITING_QUERY,
    CampaignWaiting,
    Waiting,
    WhyWaiting,
)

ENTITY = "entity"  # the entity's own pending activities (a Stripe call retrying) show under this name
NO_ANSWER = (RPCError, WorkflowQueryFailedError, RuntimeError, TimeoutError)


def _activity_wait(p: PendingActivityInfo) -> Waiting:
    failure = p.last_failure.message if p.HasField("last_failure") else None
    next_at = (
        p.next_attempt_schedule_time.ToDatetime(tzinfo=UTC) if p.HasField("next_attempt_schedule_time") else None
    )
    return Waiting(
        WAIT_ACTIVITY, until=next_at, detail=p.activity_type.name,
        attempt=p.attempt, last_error=failure or None, next_attempt_at=next_at,
    )


async def _pending_activity(client: Client, workflow_id: str, deadline: float) -> Waiting | None:
    try:
        desc = await client.get_workflow_handle(workflow_id).describe(rpc_timeout=timedelta(seconds=deadline))
    except NO_ANSWER:
        return None
    pending = list(desc.raw_description.pending_activities)
    return _activity_wait(pending[0]) if pending else None


async def _campaign(client: Client, entry: CampaignWaiting, deadline: float) -> CampaignWaiting:
    handle = client.get_workflow_handle(entry.workflow_id)
    timeout = timedelta(seconds=deadline)
    try:
        answer: CampaignWaiting = await handle.query(WAITING_QUERY, result_type=CampaignWaiting, rpc_timeout=timeout)
    except NO_ANSWER:
        # a campaign without the query (or not answering): its older `status` query, if any
        try:
            status: CampaignStatus = await handle.query("status", result_type=CampaignStatus, rpc_timeout=timeout)
            answer = CampaignWaiting(
                campaign=entry.campaign, workflow_id=entry.workflow_id, step=status.next_step,
                waiting=Waiting(WAIT_TIMER, until=status.next_step_at) if status.next_step else Waiting(WAIT_NOTHING),
                done_steps=list(status.done_steps),
            )
        except NO_ANSWER as exc:
            entry.waiting = Waiting(WAIT_NOTHING, detail=f"no answer from the campaign: {exc}")
            return entry
    answer.campaign = entry.campaign
    activity = await _pending_activity(client, entry.workflow_id, deadline)
    if activity is not None:
        answer.waiting = activity
    return answer


async def why_waiting(client: Client, customer_id: str, *, deadline: float = 2.0) -> WhyWaiting:
    """The whole answer; raises RPCError / WorkflowQueryFailedError when the entity does not
    answer within ``deadline`` seconds."""
    handle = client.get_workflow_handle(customer_workflow_id(customer_id))
    call = handle.query(WAITING_QUERY, result_type=WhyWaiting, rpc_timeout=timedelta(seconds=deadline))
    entity: WhyWaiting = await asyncio.wait_for(call, timeout=deadline)
    answers = await asyncio.gather(*(_campaign(client, c, deadline) for c in entity.campaigns))
    entity.campaigns = list(answers)
    own = await _pending_activity(client, handle.id, deadline)
    if own is not None:
        entity.campaigns.append(CampaignWaiting(
            campaign=ENTITY, workflow_id=handle.id, step=own.detail, waiting=own, marketing=False, skippable=False,
        ))
    return entity


def describe_wait(w: Waiting) -> str:
    """One line for a person: what it waits for, until when, and why."""
    parts = [w.kind.replace("_", " ")]
    if w.kind == WAIT_ACTIVITY:
        parts = [f"activity {w.detail}"]
        if w.attempt:
            parts.append(f"attempt {w.attempt}")
        if w.last_error:
            parts.append(f"last error: {w.last_error}")
        if w.next_attempt_at:
            parts.append(f"next attempt {w.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC")
        return ", ".join(parts)
    if w.until:
        parts.append(f"until {w.until:%Y-%m-%d %H:%M:%S} UTC")
    if w.detail:
        parts.append(f"({w.detail})")
    return " ".join(parts)
