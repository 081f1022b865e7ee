"""/v1/customers/{id}/subscription: subscribe, change tier or interval, cancel.

Each write goes through the customer's workflow as a validated update, so the lifecycle
knows, a bad request is refused with the reason (nothing happens in Stripe), and the
answer is the resulting subscription. The request's ``request_id`` (or a fresh one)
is the update id: a client retry with the same id gets the first answer, not a second
subscription.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from temporalio.client import (
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from lifecycle.billing.prices import tier_label
from lifecycle.contracts import catalog
from lifecycle.contracts.billing import SubscriptionRequest, SubscriptionResult
from lifecycle.contracts.ids import customer_workflow_id
from lifecycle.contracts.winback import CANCEL_REASONS
from lifecycle.db import session_scope
from lifecycle.models import CancellationRequest, Subscription
from lifecycle.retention import records
from lifecycle.settings import Settings
from starter.api.customers import get_customer_or_404
from starter.api.deps import SessionDep, SessionsDep, SettingsDep, TemporalDep
from starter.api.errors import responses
from starter.api.fields import PaymentMethodId
from starter.api.stripe_errors import stripe_http_error
from workflows.customer import CustomerWorkflow

router = APIRouter(prefix="/v1/customers", tags=["subscriptions"])

Interval = Literal["month", "year"]
# an unknown reason is a 422 naming the allowed ones (lifecycle.contracts.winback.CANCEL_REASONS)
CancelReason = Literal["too_expensive", "missing_features", "not_using", "switched", "temporary", "other"]
REQUEST_ID = r"^[A-Za-z0-9_.:-]{1,100}$"


def _check_plan(v: str | None) -> str | None:
    if v is not None and v not in catalog.PLANS_BY_CODE:
        raise ValueError(f"unknown plan; expected one of {', '.join(catalog.PLANS_BY_CODE)}")
    return v


class SubscribeBody(BaseModel):
    plan: str = Field(description="tier: " + ", ".join(catalog.PLANS_BY_CODE))
    interval: Interval = "month"
    payment_method_id: PaymentMethodId | None = Field(
        default=None, description="a Stripe payment method to attach first (pm_...)"
    )
    request_id: str | None = Field(default=None, pattern=REQUEST_ID, description="your id; a retry reuses it")

    _plan = field_validator("plan")(classmethod(lambda cls, v: _check_plan(v)))


class ChangeBody(BaseModel):
    plan: str | None = None
    interval: Interval | None = None
    request_id: str | None = Field(default=None, pattern=REQUEST_ID)

    _plan = field_validator("plan")(classmethod(lambda cls, v: _check_plan(v)))


class SubscriptionView(BaseModel):
    customer_id: str
    outcome: str
    stripe_subscription_id: str | None
    status: str | None
    plan: str | None
    interval: str | None
    amount_cents: int
    current_period_end: datetime | None
    cancel_at_period_end: bool
    latest_invoice_id: str | None
    latest_invoice_status: str | None
    pending_plan: str | None
    pending_interval: str | None
    reason: str | None = None
    save_offer: dict[str, Any] | None = Field(
        default=None,
        description="a cancellation answered with an offer (outcome save_offered): its id, kind "
        "(pause, downgrade, coupon), months, percent_off, plan and expires_at; accept it with "
        "POST .../subscription/offers/{offer_id}/accept",
    )
    stripe_price_id: str | None = None  # the mirror's answer: the price billed
    plan_mapped: bool | None = None  # the mirror's answer: False when the price maps to no tier


def _view(customer_id: str, r: SubscriptionResult) -> SubscriptionView:
    return SubscriptionView(customer_id=customer_id, **dataclasses.asdict(r))



_STATUS_BY_TYPE = {
    "NoPaymentMethod": status.HTTP_402_PAYMENT_REQUIRED,
    # the state changed while the request waited for an earlier one (e.g. a second create)
    "SubscriptionConflict": status.HTTP_409_CONFLICT,
    # Stripe's own failures (StripeInvalidRequest, StripeCardDeclined, StripeUnavailable, ...)
    # are answered by starter.api.stripe_errors.stripe_http_error
    "StripeNotConfigured": status.HTTP_503_SERVICE_UNAVAILABLE,
    "CatalogNotSynced": status.HTTP_503_SERVICE_UNAVAILABLE,
    # retention (workflows/retention/entity.py)
    "NoSuchOffer": status.HTTP_404_NOT_FOUND,
    "OfferClosed": status.HTTP_409_CONFLICT,
    "AlreadyActive": status.HTTP_409_CONFLICT,
    "NothingToReactivate": status.HTTP_409_CONFLICT,
}


def _record_request(
    sessions: sessionmaker[Session], customer_id: str, request_id: str, reason: str | None,
    comment: str | None, at_once: bool,
) -> None:
    """The request and the customer's comment, before the workflow answers (the comment
    stays in the database, out of the workflow's history)."""
    with session_scope(sessions) as session:
        get_customer_or_404(session, customer_id)
        records.request_cancellation(
            session, customer_id=customer_id, request_id=request_id, reason=reason, comment=comment,
            at_once=at_once, now=datetime.now(UTC),
        )


def _record_refusal(sessions: sessionmaker[Session], request_id: str, why: str) -> None:
    with session_scope(sessions) as session:
        records.refuse_cancellation(session, request_id, why)


def _record_outcome(sessions: sessionmaker[Session], request_id: str, outcome: str) -> None:
    """A request the workflow carried out without recording it (one without a reason)."""
    with session_scope(sessions) as session:
        row = session.get(CancellationRequest, request_id)
        if row is not None and row.outcome == "requested":
            row.outcome = "canceled" if outcome == "canceled" else "cancel_scheduled"
            row.decided_at = datetime.now(UTC)


def _exists_or_404(sessions: sessionmaker[Session], customer_id: str) -> None:
    with sessions() as session:
        get_customer_or_404(session, customer_id)


async def _update(
    sessions: sessionmaker[Session], client: TemporalDep, settings: Settings, customer_id: str,
    req: SubscriptionRequest,
) -> SubscriptionView:
    """Run the request as the workflow's update; the answer, or the refusal as an HTTP error."""
    await run_in_threadpool(_exists_or_404, sessions, customer_id)  # no connection held after
    return await run_update(
        client, customer_id, CustomerWorkflow.change_subscription, req, f"subscription:{req.request_id}",
        deadline=settings.temporal_deadline_seconds,
    )


async def run_update(
    client: TemporalDep, customer_id: str, update: Any, arg: Any, update_id: str, *, deadline: float
) -> SubscriptionView:
    """One of the entity's subscription updates (change_subscription, the save offer's
    answers, reactivate); the answer, or the refusal as an HTTP error.

    Temporal must take the update (the workflow's validator accepts it) within ``deadline``
    (``LIFECYCLE_TEMPORAL_DEADLINE_SECONDS``), as on every other route: unreachable, it is a
    503 within the deadline (a retry with the same request id is the same update). Once
    accepted, the answer waits for the work (Stripe's calls) to finish."""
    handle = client.get_workflow_handle(customer_workflow_id(customer_id))
    try:
        started = await asyncio.wait_for(
            handle.start_update(
                update, arg, id=update_id, result_type=SubscriptionResult,
                wait_for_stage=WorkflowUpdateStage.ACCEPTED, rpc_timeout=timedelta(seconds=deadline),
            ),
            timeout=deadline,
        )
        result = await started.result()
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        raise HTTPException(
            503, f"Temporal did not take the request within {deadline:g} s; retry with the same request_id",
            headers={"Retry-After": "5"},
        ) from None
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        message = getattr(cause, "message", None) or str(cause or exc)
        kind = cause.type if isinstance(cause, ApplicationError) else None
        details = tuple(cause.details) if isinstance(cause, ApplicationError) else ()
        stripe_answer = stripe_http_error(kind, message, details)
        if stripe_answer is not None:
            raise stripe_answer from None
        code = _STATUS_BY_TYPE.get(kind or "")
        if code is None:  # refused by the validator: the request does not fit the state
            field = message.split(":", 1)[0]
            code = 422 if field in ("plan", "interval", "action") else status.HTTP_409_CONFLICT
        raise HTTPException(code, message) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"customer {customer_id!r} has no running lifecycle workflow") from None
        raise HTTPException(
            503, f"Temporal could not take the request: {exc.message}", headers={"Retry-After": "5"}
        ) from None
    except RuntimeError as exc:  # lazy client could not connect
        raise HTTPException(503, f"Temporal is unreachable: {exc}", headers={"Retry-After": "5"}) from None
    return _view(customer_id, result)


@router.post(
    "/{customer_id}/subscription", response_model=SubscriptionView, status_code=201,
    responses=responses(400, 401, 402, 404, 409, 413, 422, 502, 503),
)
async def subscribe(
    customer_id: str, body: SubscribeBody, sessions: SessionsDep, client: TemporalDep, settings: SettingsDep,
) -> SubscriptionView:
    """Subscribe to a tier and interval (charges the first invoice), or undo a pending cancellation
    (and move to the tier and interval asked for, as a PATCH would)."""
    req = SubscriptionRequest(
        action="create",
        request_id=body.request_id or uuid.uuid4().hex,
        plan=body.plan,
        interval=body.interval,
        detail={"payment_method_id": body.payment_method_id} if body.payment_method_id else {},
    )
    return await _update(sessions, client, settings, customer_id, req)


@router.patch(
    "/{customer_id}/subscription", response_model=SubscriptionView,
    responses=responses(400, 401, 402, 404, 409, 413, 422, 502, 503),
)
async def change(
    customer_id: str, body: ChangeBody, sessions: SessionsDep, client: TemporalDep, settings: SettingsDep,
) -> SubscriptionView:
    """Change tier or interval: an upgrade applies now (prorated), a downgrade at the period end."""
    req = SubscriptionRequest(
        action="change", request_id=body.request_id or uuid.uuid4().hex, plan=body.plan, interval=body.interval
    )
    return await _update(sessions, client, settings, customer_id, req)


@router.delete(
    "/{customer_id}/subscription", response_model=SubscriptionView,
    responses=responses(401, 402, 404, 409, 422, 502, 503),
)
async def cancel(
    customer_id: str,
    sessions: SessionsDep,
    client: TemporalDep,
    settings: SettingsDep,
    at_once: Annotated[bool, Query(description="cancel now instead of at the period end")] = False,
    request_id: Annotated[str | None, Query(pattern=REQUEST_ID)] = None,
    reason: Annotated[CancelReason | None, Query(description="why: " + ", ".join(CANCEL_REASONS))] = None,
    comment: Annotated[str | None, Query(max_length=2000, description="the customer's own words")] = None,
) -> SubscriptionView:
    """Cancel at the end of the paid period (default), or now with ``?at_once=true``.

    With a ``reason`` the policy may answer with one save offer (outcome ``save_offered``,
    the offer in ``save_offer``): nothing is canceled until it is declined or its window
    closes. The request, the offer and the outcome are recorded with the reason."""
    req = SubscriptionRequest(
        action="cancel",
        request_id=request_id or uuid.uuid4().hex,
        at_once=at_once,
        detail={"reason": reason} if reason else {},
    )
    await run_in_threadpool(
        _record_request, sessions, customer_id, req.request_id, reason, comment, at_once
    )
    try:
        view = await _update(sessions, client, settings, customer_id, req)
    except HTTPException as exc:
        await run_in_threadpool(_record_refusal, sessions, req.request_id, str(exc.detail))
        raise
    await run_in_threadpool(_record_outcome, sessions, req.request_id, view.outcome)
    return view


@router.get(
    "/{customer_id}/subscription", response_model=SubscriptionView, responses=responses(401, 404, 422)
)
def current(customer_id: str, session: SessionDep, response: Response) -> SubscriptionView:
    """The customer's latest subscription as mirrored from Stripe (no Stripe call)."""
    get_customer_or_404(session, customer_id)
    row = session.scalar(
        select(Subscription)
        .where(Subscription.customer_id == customer_id)
        .order_by(Subscription.stripe_version_ts.desc(), Subscription.id.desc())
    )
    if row is None:
        raise HTTPException(404, f"customer {customer_id!r} has no subscription")
    mirrored = SubscriptionResult(
        outcome="mirror",
        stripe_subscription_id=row.stripe_subscription_id,
        status=row.status,
        # the tier, or "unmapped price price_..." (never null): see `lifecycle stripe prices`
        plan=tier_label(row.plan_code, row.stripe_price_id),
        interval=row.interval,
        amount_cents=row.amount_cents,
        current_period_end=row.current_period_end,
        cancel_at_period_end=row.cancel_at_period_end,
    )
    view = _view(customer_id, mirrored)
    view.stripe_price_id = row.stripe_price_id
    view.plan_mapped = row.plan_code is not None
    return view
