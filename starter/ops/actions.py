"""Taking an ops action on one customer: the one path the HTTP API and the CLI share.

The checks that need the database or another workflow's answer happen here, before the
entity is asked: the customer exists (404), the email to resend is uncertain or bounced
(409), the step to skip is the one waiting (409, with what is running), extend-grace and
retry-now reach the running dunning child's updates by name. Then the entity's
``ops_action`` update decides (its validator refuses with the reason: 409) and records the
action in the audit trail. The two that move money (retry-now, extend-grace) also write
their intent to the trail before acting and their outcome (done, or refused and why) after. No database connection is held while Temporal is called.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from lifecycle import audit
from lifecycle.audit import INTENT, OUTCOME
from lifecycle.contracts.campaigns import CampaignStatus
from lifecycle.contracts.customer import CustomerState
from lifecycle.contracts.dunning import ExtendGrace, RetryNow
from lifecycle.contracts.ids import customer_workflow_id
from lifecycle.contracts.ops import (
    ACTIONS,
    DUNNING_CAMPAIGN,
    EXTEND_GRACE,
    EXTEND_GRACE_UPDATE,
    OPS_ACTION_UPDATE,
    RESEND,
    RETRY_NOW,
    RETRY_NOW_UPDATE,
    SKIP_STEP,
    AuditEntryInput,
    OpsAction,
    OpsActionResult,
    step_refusal,
)
from lifecycle.email.service import RESENDABLE
from lifecycle.models import Customer, EmailMessage
from starter.ops.why import why_waiting


class ActionRefused(Exception):
    """The action does not fit; ``status`` is the HTTP answer (404, 409, 422, 503)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ActionRequest:
    action: str
    reason: str
    actor: str
    campaign: str | None = None
    step: str | None = None
    days: int | None = None


def new_action(req: ActionRequest) -> OpsAction:
    """The entity's input, with our own id (the audit row's key and the update's id)."""
    if req.action not in ACTIONS:
        raise ActionRefused(404, f"unknown action {req.action!r}; expected one of {', '.join(ACTIONS)}")
    if not req.reason or not req.reason.strip():
        raise ActionRefused(422, "a reason is required: say why, it goes into the audit trail")
    if req.action == EXTEND_GRACE and (req.days is None or req.days <= 0):
        raise ActionRefused(422, "days must be a positive number of days")
    if req.action == SKIP_STEP and not req.campaign:
        raise ActionRefused(422, "skip-step needs the campaign whose waiting step to skip")
    if req.action == RESEND and not req.step:
        raise ActionRefused(422, "resend needs the step whose email to send again")
    return OpsAction(
        action=req.action, reason=req.reason.strip(), actor=req.actor, action_id=uuid.uuid4().hex,
        campaign=req.campaign, step=req.step, days=req.days, requested_at=dt.datetime.now(dt.UTC),
    )


def _customer_exists(sessions: sessionmaker[Session], customer_id: str) -> bool:
    with sessions() as session:
        return session.get(Customer, customer_id) is not None


def _resendable(sessions: sessionmaker[Session], customer_id: str, step: str, campaign: str | None) -> int:
    """The newest uncertain or bounced email of ``step``; else a 409 listing what there is."""
    with sessions() as session:
        query = select(EmailMessage).where(EmailMessage.customer_id == customer_id, EmailMessage.is_test.is_(False))
        rows = list(session.scalars(query.order_by(EmailMessage.id.desc())))
    for row in rows:
        if row.step == step and (campaign is None or row.campaign == campaign) and row.status in RESENDABLE:
            return row.id
    listing = ", ".join(f"{r.campaign}/{r.step} ({r.status})" for r in rows[:10]) or "none"
    raise ActionRefused(409, f"no uncertain or bounced email for step {step!r}; emails: {listing}")


async def _check_step(client: Client, customer_id: str, action: OpsAction, deadline: float) -> None:
    why = await why_waiting(client, customer_id, deadline=deadline)
    running = {c.campaign: c for c in why.campaigns}
    found = running.get(action.campaign or "")
    if found is None:
        listing = ", ".join(sorted(running)) or "none"
        raise ActionRefused(409, f"unknown campaign {action.campaign!r}; running: {listing}")
    refusal = step_refusal(action, found)
    if refusal:
        raise ActionRefused(409, refusal)
    action.step = found.step


async def _to_dunning(
    client: Client, customer_id: str, action: OpsAction, deadline: float, before_acting: Callable[[], Awaitable[None]]
) -> None:
    """extend-grace / retry-now: the dunning child's own update, by name (``before_acting``
    first: the audit trail's intent); the entity then records it. Without a running
    dunning: 409, and nothing in the trail."""
    handle = client.get_workflow_handle(customer_workflow_id(customer_id))
    state: CustomerState = await handle.query("state", result_type=CustomerState,
                                              rpc_timeout=dt.timedelta(seconds=deadline))
    child = state.campaigns.get(DUNNING_CAMPAIGN)
    if not child:
        raise ActionRefused(409, "no dunning is running")
    dunning = client.get_workflow_handle(child)
    await before_acting()
    try:
        answer: object
        if action.action == EXTEND_GRACE:
            status = await dunning.execute_update(
                EXTEND_GRACE_UPDATE, ExtendGrace(days=action.days or 0, reason=action.reason),
                result_type=CampaignStatus,
            )
            answer = f"grace extended by {action.days} days; next: {status.next_step or 'nothing'}" + (
                f" at {status.next_step_at:%Y-%m-%d %H:%M} UTC" if status.next_step_at else "")
        else:
            answer = await dunning.execute_update(RETRY_NOW_UPDATE, RetryNow(reason=action.reason), result_type=str)
    except WorkflowUpdateFailedError as exc:
        raise ActionRefused(409, getattr(exc.cause, "message", None) or str(exc.cause or exc)) from None
    action.applied = {"dunning_workflow": child, "dunning_answer": str(answer)}


async def take_action(
    client: Client, sessions: sessionmaker[Session], customer_id: str, req: ActionRequest, *, deadline: float = 5.0
) -> OpsActionResult:
    """Check, then run the action as the entity's update; refusals raise :class:`ActionRefused`."""
    action = new_action(req)
    intended: list[bool] = []  # the intent is in the audit trail: its outcome must follow
    if not await asyncio.to_thread(_customer_exists, sessions, customer_id):
        raise ActionRefused(404, f"unknown customer {customer_id!r}")
    try:
        if action.action == RESEND:
            action.message_id = await asyncio.to_thread(
                _resendable, sessions, customer_id, action.step or "", action.campaign
            )
        if action.action == SKIP_STEP:
            await _check_step(client, customer_id, action, deadline)
        if action.action in MOVES_MONEY:
            async def intent() -> None:
                await asyncio.to_thread(_audit_phase, sessions, customer_id, action, INTENT, {})
                intended.append(True)

            await _to_dunning(client, customer_id, action, deadline, intent)
        handle = client.get_workflow_handle(customer_workflow_id(customer_id))
        result: OpsActionResult = await handle.execute_update(
            OPS_ACTION_UPDATE, action, id=f"ops:{action.action_id}", result_type=OpsActionResult
        )
    except WorkflowUpdateFailedError as exc:  # the validator's refusal: nothing changed
        refused = ActionRefused(409, getattr(exc.cause, "message", None) or str(exc.cause or exc))
    except ActionRefused as exc:
        refused = exc
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            refused = ActionRefused(404, f"customer {customer_id!r} has no running lifecycle workflow")
        else:
            refused = ActionRefused(503, f"Temporal could not take the action: {exc.message}")
    except (RuntimeError, TimeoutError, WorkflowQueryFailedError) as exc:
        refused = ActionRefused(503, f"Temporal could not take the action: {exc}")
    else:
        if intended:
            await asyncio.to_thread(_audit_phase, sessions, customer_id, action, OUTCOME,
                                    {"outcome": result.done, **action.applied})
        return result
    if intended:
        await asyncio.to_thread(_audit_phase, sessions, customer_id, action, OUTCOME,
                                {"outcome": f"refused ({refused.status}): {refused.message}"[:500]})
    raise refused


# written to the audit trail as an intent before acting and its outcome after
MOVES_MONEY = (EXTEND_GRACE, RETRY_NOW)


def _audit_phase(
    sessions: sessionmaker[Session], customer_id: str, action: OpsAction, phase: str, detail: dict[str, object]
) -> None:
    audit.record(sessions, AuditEntryInput(
        action_id=f"{action.action_id}:{phase}", customer_id=customer_id, action=action.action,
        actor=action.actor, reason=action.reason, occurred_at=dt.datetime.now(dt.UTC),
        detail={"phase": phase, "days": action.days, **detail},
    ))
