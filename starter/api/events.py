"""Events from the product: signup, activation facts, payment method on file, email preferences.

Each route commits its facts together with the event for the customer's workflow (the
signal outbox, ``lifecycle.signal_outbox``) in one short transaction, in a worker
thread, then delivers the event within ``LIFECYCLE_TEMPORAL_DEADLINE_SECONDS``. When
Temporal cannot take it in time the answer says ``queued`` (202) and the relay
delivers it when Temporal is back: an acknowledged event is never lost, no database
connection is held while Temporal is called, and a repeated request records nothing twice.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field, field_validator
from starlette.concurrency import run_in_threadpool

from lifecycle.contracts import catalog
from lifecycle.contracts.events import (
    Activation,
    PaymentMethodAdded,
    Resubscribed,
    Signup,
    Unsubscribed,
    customer_event,
)
from lifecycle.db import add_timeline_event, insert_ignore, session_scope
from lifecycle.email.suppressions import (
    BOUNCE,
    SPAM,
    UNSUBSCRIBE,
    add_suppression,
    remove_unsubscribe,
    suppression_reasons,
)
from lifecycle.models import Customer
from lifecycle.signal_outbox import enqueue
from starter.api.customers import CustomerView, customer_view, get_customer_or_404
from starter.api.deps import RelayDep, SessionsDep, SettingsDep, TemporalDep
from starter.api.errors import responses
from starter.api.fields import (
    Attributes,
    CustomerId,
    CustomerIdPath,
    Email,
    EventId,
    Fact,
    Name,
    PaymentMethodId,
    TimeZoneName,
)

router = APIRouter(tags=["events"])

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class SignupEvent(BaseModel):
    customer_id: CustomerId
    email: Email
    name: Name = ""
    company: Name = ""
    timezone: TimeZoneName = Field(default="UTC", description="IANA time zone, e.g. Europe/Berlin")
    plan: str = Field(default=catalog.DEFAULT_TRIAL_PLAN, max_length=32, description="tier the trial runs on")
    attributes: Attributes = Field(default_factory=dict)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        if not EMAIL_RE.match(v):
            raise ValueError("not an email address")
        return v.strip()

    @field_validator("plan")
    @classmethod
    def _plan(cls, v: str) -> str:
        if v not in catalog.PLANS_BY_CODE:
            raise ValueError(f"unknown plan; expected one of {', '.join(catalog.PLANS_BY_CODE)}")
        return v


class ActivationEvent(BaseModel):
    customer_id: CustomerId
    fact: Fact = Field(description="what the customer did, e.g. created_first_project")
    event_id: EventId | None = Field(default=None, description="your id, for de-duplication")
    occurred_at: datetime | None = None


class PaymentMethodEvent(BaseModel):
    payment_method_id: PaymentMethodId | None = Field(
        default=None,
        description="the Stripe payment method (pm_...) to charge when the trial converts; "
        "omit when the card was attached in Stripe directly",
    )


class Accepted(BaseModel):
    status: str = Field(description="delivered: the workflow has it; queued: recorded, delivered when Temporal answers")
    event_id: str


def _accepted(delivered: bool, event_id: str) -> Accepted:
    return Accepted(status="delivered" if delivered else "queued", event_id=event_id)


@router.post(
    "/v1/events/signup", response_model=CustomerView, status_code=201,
    responses={200: {"model": CustomerView, "description": "already signed up: the existing state"},
               202: {"model": CustomerView, "description": "signed up while Temporal could not take it: "
                     "stored, the lifecycle starts when Temporal answers (`queued`: true)"},
               **responses(400, 401, 413, 422)},
)
async def signup(
    body: SignupEvent, response: Response, sessions: SessionsDep, client: TemporalDep, settings: SettingsDep, relay: RelayDep
) -> CustomerView:
    """Sign a customer up: stores them, starts their lifecycle. Idempotent: a repeat returns the existing state.

    201 created; 200 a repeat; 202 created while Temporal was unreachable: the lifecycle
    starts as soon as Temporal answers (nothing to retry).
    """
    event = customer_event(f"signup:{body.customer_id}", Signup())

    def record() -> tuple[bool, Customer]:
        with session_scope(sessions) as session:
            created = insert_ignore(
                session,
                Customer,
                dict(
                    id=body.customer_id, email=body.email, name=body.name, company=body.company,
                    timezone=body.timezone, attributes=body.attributes, plan_code=body.plan,
                    stage="trialing",
                ),
                on=("id",),
            )
            if created:
                add_timeline_event(
                    session, key=event.event_id, customer_id=body.customer_id, kind="signup",
                    detail={"plan": body.plan}, at=datetime.now(UTC),
                )
            customer = session.get(Customer, body.customer_id)
            assert customer is not None
            enqueue(session, customer.id, event, start_plan=customer.plan_code or catalog.NO_TIER)
            return created, customer

    created, customer = await run_in_threadpool(record)
    delivered = await relay.deliver_customer(customer.id)
    if not created:
        response.status_code = status.HTTP_200_OK
    elif not delivered:
        response.status_code = status.HTTP_202_ACCEPTED
    view = await customer_view(client, settings, customer, ask_temporal=delivered)
    view.created = created
    view.queued = not delivered
    return view


@router.post(
    "/v1/events/activation", status_code=202, response_model=Accepted, responses=responses(400, 401, 404, 413, 422)
)
async def activation(
    body: ActivationEvent, sessions: SessionsDep, client: TemporalDep, settings: SettingsDep, relay: RelayDep
) -> Accepted:
    """An activation fact (e.g. created_first_project): onboarding skips what the customer already did."""
    event_id = body.event_id or f"activation:{body.customer_id}:{body.fact}"

    def record() -> None:
        with session_scope(sessions) as session:
            customer = get_customer_or_404(session, body.customer_id)
            add_timeline_event(
                session, key=event_id, customer_id=customer.id, kind="activation",
                detail={"fact": body.fact}, at=body.occurred_at or datetime.now(UTC),
            )
            enqueue(session, customer.id, customer_event(event_id, Activation(fact=body.fact)))

    await run_in_threadpool(record)
    return _accepted(await relay.deliver_customer(body.customer_id), event_id)


@router.post(
    "/v1/customers/{customer_id}/payment-method", status_code=202, response_model=Accepted,
    responses=responses(400, 401, 404, 413, 422),
)
async def payment_method(
    customer_id: CustomerIdPath, sessions: SessionsDep, client: TemporalDep, settings: SettingsDep, relay: RelayDep,
    body: PaymentMethodEvent | None = None,
) -> Accepted:
    """Mark a payment method on file; a trialing customer then converts at the end of the trial."""
    pm = body.payment_method_id if body else None
    event_id = f"payment_method:{customer_id}:{pm or 'on_file'}"

    def record() -> None:
        with session_scope(sessions) as session:
            customer = get_customer_or_404(session, customer_id)
            customer.payment_method_on_file = True
            add_timeline_event(
                session, key=event_id, customer_id=customer.id, kind="payment_method_added",
                detail={}, at=datetime.now(UTC),
            )
            enqueue(session, customer.id, customer_event(event_id, PaymentMethodAdded(payment_method_id=pm or None)))

    await run_in_threadpool(record)
    return _accepted(await relay.deliver_customer(customer_id), event_id)


class EmailPreferences(BaseModel):
    marketing: bool = Field(description="false: unsubscribe from marketing email; true: opt back in")


class EmailPreferencesView(BaseModel):
    customer_id: str
    marketing: bool
    suppressed: list[str] = Field(
        description="what still blocks email: a hard bounce or a spam report is never lifted here"
    )


@router.put(
    "/v1/customers/{customer_id}/email-preferences", response_model=EmailPreferencesView,
    responses=responses(400, 401, 404, 413, 422),
)
async def email_preferences(
    customer_id: CustomerIdPath, body: EmailPreferences, sessions: SessionsDep, relay: RelayDep,
) -> EmailPreferencesView:
    """The customer's own marketing-email choice, from the product's settings page.

    Opting out records the same suppression as the unsubscribe link; opting back in lifts
    only that one. Transactional email (billing, account) is not affected either way.
    Each change is its own event (its own id), so opting out, in and out again all reach
    the timeline and the workflow; a request that changes nothing records nothing.
    """

    def record() -> EmailPreferencesView:
        with session_scope(sessions) as session:
            customer = get_customer_or_404(session, customer_id)
            if body.marketing:
                changed = remove_unsubscribe(session, customer_id=customer.id, email=customer.email)
                kind = "resubscribed"
            else:
                changed = add_suppression(
                    session, email=customer.email, reason=UNSUBSCRIBE, customer_id=customer.id,
                    source="preferences",
                )
                kind = "unsubscribed"
            if changed:
                now = datetime.now(UTC)
                event_id = f"{kind}:{customer.id}:{now.strftime('%Y%m%dT%H%M%S%f')}:{uuid.uuid4().hex[:8]}"
                add_timeline_event(
                    session, key=event_id, customer_id=customer.id, kind=kind,
                    detail={"source": "preferences"}, at=now,
                )
                payload = Resubscribed if body.marketing else Unsubscribed
                enqueue(session, customer.id, customer_event(event_id, payload(source="preferences")))
            session.flush()
            reasons = suppression_reasons(session, customer.id, customer.email)
            return EmailPreferencesView(
                customer_id=customer.id,
                marketing=UNSUBSCRIBE not in reasons and not (reasons & {BOUNCE, SPAM}),
                suppressed=sorted(reasons - {UNSUBSCRIBE}),
            )

    view = await run_in_threadpool(record)
    await relay.deliver_customer(customer_id)
    return view


class TimeZoneBody(BaseModel):
    time_zone: TimeZoneName = Field(description="IANA time zone, e.g. Europe/Berlin")


class TimeZoneView(BaseModel):
    customer_id: str
    time_zone: str


@router.put(
    "/v1/customers/{customer_id}/time-zone", response_model=TimeZoneView,
    responses=responses(400, 401, 404, 413, 422),
)
async def put_time_zone(customer_id: CustomerIdPath, body: TimeZoneBody, sessions: SessionsDep) -> TimeZoneView:
    """The customer's time zone (an IANA name): dates and times in their emails and their
    marketing send window follow it from the next email on. 422 for a name zoneinfo does not know."""

    def record() -> TimeZoneView:
        with session_scope(sessions) as session:
            customer = get_customer_or_404(session, customer_id)
            if customer.timezone != body.time_zone:
                now = datetime.now(UTC)
                add_timeline_event(
                    session, key=f"time_zone:{customer.id}:{now.strftime('%Y%m%dT%H%M%S%f')}",
                    customer_id=customer.id, kind="time_zone_changed",
                    detail={"from": customer.timezone, "to": body.time_zone}, at=now,
                )
                customer.timezone = body.time_zone
            return TimeZoneView(customer_id=customer.id, time_zone=customer.timezone)

    return await run_in_threadpool(record)
