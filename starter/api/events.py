"""Events from the product: signup, activation facts, payment method on file.

Each route writes its facts and signals the customer's workflow in one unit: when
Temporal cannot take the event, the database work is rolled back and the API answers
503, so nothing is recorded half-way and the product can simply retry.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, Field, field_validator

from lifecycle import catalog
from lifecycle.db import add_timeline_event
from lifecycle.email_service import (
    BOUNCE,
    SPAM,
    UNSUBSCRIBE,
    add_suppression,
    remove_unsubscribe,
    suppression_reasons,
)
from lifecycle.messages import CustomerEvent
from lifecycle.models import Customer
from starter.api.customers import CustomerView, customer_view, get_customer_or_404
from starter.api.deps import SessionDep, SettingsDep, TemporalDep
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
from starter.events import TemporalUnavailable, signal_customer, start_input

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

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not an IANA time zone (e.g. 'Europe/Berlin')") from None
        return v

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


def _unavailable(exc: TemporalUnavailable) -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        f"{exc} The event was not recorded; retry shortly.",
        headers={"Retry-After": "5"},
    )


@router.post(
    "/v1/events/signup", response_model=CustomerView, status_code=201,
    responses={200: {"model": CustomerView, "description": "already signed up: the existing state"},
               **responses(400, 401, 413, 422, 503)},
)
async def signup(
    body: SignupEvent, response: Response, session: SessionDep, client: TemporalDep, settings: SettingsDep
) -> CustomerView:
    """Sign a customer up: stores them, starts their lifecycle. Idempotent: a repeat returns the existing state."""
    customer = session.get(Customer, body.customer_id)
    created = customer is None
    if customer is None:
        customer = Customer(
            id=body.customer_id,
            email=body.email,
            name=body.name,
            company=body.company,
            timezone=body.timezone,
            attributes=body.attributes,
            plan_code=body.plan,
            stage="trialing",
        )
        session.add(customer)
        add_timeline_event(
            session,
            key=f"signup:{customer.id}",
            customer_id=customer.id,
            kind="signup",
            detail={"plan": body.plan},
            at=datetime.now(UTC),
        )
        session.flush()
    try:
        await signal_customer(
            client,
            customer.id,
            CustomerEvent(event_id=f"signup:{customer.id}", kind="signup"),
            start=start_input(settings, customer.id, customer.plan_code),
            task_queue=settings.task_queue,
        )
    except TemporalUnavailable as exc:
        session.rollback()
        raise _unavailable(exc) from None
    session.commit()
    if not created:
        response.status_code = status.HTTP_200_OK
    view = await customer_view(client, settings, customer)
    view.created = created
    return view


@router.post("/v1/events/activation", status_code=202, responses=responses(400, 401, 404, 413, 422, 503))
async def activation(body: ActivationEvent, session: SessionDep, client: TemporalDep) -> dict[str, str]:
    """An activation fact (e.g. created_first_project): onboarding skips what the customer already did."""
    customer = get_customer_or_404(session, body.customer_id)
    event_id = body.event_id or f"activation:{customer.id}:{body.fact}"
    add_timeline_event(
        session,
        key=event_id,
        customer_id=customer.id,
        kind="activation",
        detail={"fact": body.fact},
        at=body.occurred_at or datetime.now(UTC),
    )
    session.flush()
    try:
        await signal_customer(
            client, customer.id, CustomerEvent(event_id=event_id, kind="activation", data={"fact": body.fact})
        )
    except TemporalUnavailable as exc:
        session.rollback()
        raise _unavailable(exc) from None
    session.commit()
    return {"status": "accepted", "event_id": event_id}


@router.post(
    "/v1/customers/{customer_id}/payment-method", status_code=202,
    responses=responses(400, 401, 404, 413, 422, 503),
)
async def payment_method(
    customer_id: CustomerIdPath, session: SessionDep, client: TemporalDep, body: PaymentMethodEvent | None = None
) -> dict[str, str]:
    """Mark a payment method on file; a trialing customer then converts at the end of the trial."""
    customer = get_customer_or_404(session, customer_id)
    customer.payment_method_on_file = True
    event_id = f"payment_method:{customer.id}:{(body and body.payment_method_id) or 'on_file'}"
    add_timeline_event(
        session, key=event_id, customer_id=customer.id, kind="payment_method_added", detail={}, at=datetime.now(UTC)
    )
    session.flush()
    try:
        await signal_customer(
            client,
            customer.id,
            CustomerEvent(
                event_id=event_id,
                kind="payment_method_added",
                data={"payment_method_id": body.payment_method_id} if body and body.payment_method_id else {},
            ),
        )
    except TemporalUnavailable as exc:
        session.rollback()
        raise _unavailable(exc) from None
    session.commit()
    return {"status": "accepted", "event_id": event_id}


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
    responses=responses(400, 401, 404, 413, 422, 503),
)
async def email_preferences(
    customer_id: CustomerIdPath, body: EmailPreferences, session: SessionDep, client: TemporalDep
) -> EmailPreferencesView:
    """The customer's own marketing-email choice, from the product's settings page.

    Opting out records the same suppression as the unsubscribe link; opting back in lifts
    only that one. Transactional email (billing, account) is not affected either way.
    """
    customer = get_customer_or_404(session, customer_id)
    now = datetime.now(UTC)
    if body.marketing:
        changed = remove_unsubscribe(session, customer_id=customer.id, email=customer.email)
        kind = "resubscribed"
    else:
        changed = add_suppression(
            session, email=customer.email, reason=UNSUBSCRIBE, customer_id=customer.id, source="preferences"
        )
        kind = "unsubscribed"
    if changed:
        stamp = now.strftime("%Y%m%dT%H%M%S%f")
        add_timeline_event(
            session, key=f"{kind}:{customer.id}:{stamp}", customer_id=customer.id, kind=kind,
            detail={"source": "preferences"}, at=now,
        )
        session.flush()
        try:
            await signal_customer(client, customer.id, CustomerEvent(event_id=f"{kind}:{customer.id}:{stamp}", kind=kind))
        except TemporalUnavailable as exc:
            session.rollback()
            raise _unavailable(exc) from None
    session.commit()
    reasons = suppression_reasons(session, customer.id, customer.email)
    return EmailPreferencesView(
        customer_id=customer.id,
        marketing=UNSUBSCRIBE not in reasons and not (reasons & {BOUNCE, SPAM}),
        suppressed=sorted(reasons - {UNSUBSCRIBE}),
    )
