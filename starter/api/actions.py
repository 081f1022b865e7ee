"""POST /v1/customers/{id}/actions/{action} and GET /v1/audit: ops acting on one customer.

Every action needs a ``reason``; who did it is the API key's name. The checks and the
update are :func:`starter.ops.actions.take_action` (shared with the CLI): 404 unknown
customer or action, 409 an action that does not fit (with what is running), 422 bad
input. The route holds no database connection while Temporal is called.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from lifecycle import audit
from lifecycle.contracts.ops import ACTIONS
from starter.api.deps import ApiKeyDep, SessionsDep, SettingsDep, TemporalDep
from starter.api.errors import responses
from starter.api.fields import CustomerIdPath, Text
from starter.api.idempotent import IdempotencyKeyHeader, once
from starter.ops.actions import ActionRefused, ActionRequest, take_action

router = APIRouter(prefix="/v1", tags=["ops"])


class ActionBody(BaseModel):
    reason: Text(2000, min_length=1, free_text=True) = Field(  # type: ignore[valid-type]  # an Annotated alias
        description="why: it goes into the audit trail and the customer's timeline"
    )
    campaign: Text(64) | None = Field(  # type: ignore[valid-type]
        default=None, description="cancel-campaign, skip-step: which campaign; resend: narrows the step"
    )
    step: Text(64) | None = Field(  # type: ignore[valid-type]
        default=None, description="skip-step: the step you saw waiting (optional); resend: the step to send again"
    )
    days: int | None = Field(default=None, gt=0, le=365, description="extend-grace: how many days")


class ActionView(BaseModel):
    customer_id: str
    action: str
    done: str
    campaigns: list[str]
    paused: bool
    actor: str


class AuditView(BaseModel):
    occurred_at: dt.datetime
    customer_id: str
    action: str
    actor: str
    reason: str
    detail: dict[str, Any]
    action_id: str


@router.post(
    "/customers/{customer_id}/actions/{action}",
    response_model=ActionView,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
    description=f"Actions: {', '.join(ACTIONS)}.",
)
async def post_action(
    customer_id: CustomerIdPath,
    action: Annotated[str, Path(max_length=32, description=f"one of {', '.join(ACTIONS)}")],
    body: ActionBody,
    grant: ApiKeyDep,
    sessions: SessionsDep,
    client: TemporalDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ActionView | JSONResponse:
    """With ``Idempotency-Key``, a retry acts once and gets the first answer (409 while the
    first is still acting)."""
    request = ActionRequest(
        action=action, reason=body.reason, actor=grant.name, campaign=body.campaign, step=body.step, days=body.days,
    )

    async def act() -> ActionView:
        try:
            result = await take_action(
                client, sessions, customer_id, request, deadline=max(settings.temporal_deadline_seconds, 5.0)
            )
        except ActionRefused as exc:
            headers = {"Retry-After": "5"} if exc.status == 503 else None
            raise HTTPException(exc.status, exc.message, headers=headers) from None
        return ActionView(customer_id=customer_id, action=result.action, done=result.done,
                          campaigns=result.campaigns, paused=result.paused, actor=grant.name)

    return await once(sessions, f"action:{customer_id}:{action}", idempotency_key, grant.name, act)


@router.get("/audit", response_model=list[AuditView], responses=responses(401, 403, 422))
async def get_audit(
    sessions: SessionsDep,
    customer: Annotated[str | None, Query(max_length=128)] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditView]:
    """The audit trail, newest first, by customer and/or actor."""

    def load() -> list[audit.AuditRow]:
        with sessions() as session:
            return audit.entries(session, customer_id=customer, actor=actor, limit=limit)

    return [AuditView(**vars(row)) for row in await run_in_threadpool(load)]
