"""/v1/customers/{id}/subscription/offers/{offer_id}/accept | decline: the answer to a
cancellation's save offer.

The offer is looked up in ``save_offers`` first (an unknown one, or another customer's, is a
404 without asking Temporal); the answer is then the entity's validated update, which
refuses an expired or already answered offer (409) before anything reaches Stripe.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from lifecycle.contracts.winback import OfferAnswer
from lifecycle.retention.records import offer_row
from lifecycle.settings import Settings
from starter.api.customers import get_customer_or_404
from starter.api.deps import SessionsDep, SettingsDep, TemporalDep
from starter.api.errors import responses
from starter.api.subscriptions import REQUEST_ID, SubscriptionView, run_update
from workflows.customer import CustomerWorkflow

router = APIRouter(prefix="/v1/customers", tags=["subscriptions"])


class AnswerBody(BaseModel):
    """Optional: your id for the answer; a retry with the same id gets the first answer."""

    request_id: str | None = Field(default=None, pattern=REQUEST_ID)


def _offer_of_customer_or_404(sessions: sessionmaker[Session], customer_id: str, offer_id: str) -> None:
    with sessions() as session:
        get_customer_or_404(session, customer_id)
        row = offer_row(session, offer_id)
        if row is None or row.customer_id != customer_id:
            raise HTTPException(404, f"offer: no offer {offer_id!r} for customer {customer_id!r}")


async def _answer(
    sessions: sessionmaker[Session], client: TemporalDep, settings: Settings, customer_id: str, offer_id: str,
    request_id: str | None, accept: bool,
) -> SubscriptionView:
    await run_in_threadpool(_offer_of_customer_or_404, sessions, customer_id, offer_id)
    ans = OfferAnswer(offer_id=offer_id, request_id=request_id or uuid.uuid4().hex)
    update = CustomerWorkflow.accept_save_offer if accept else CustomerWorkflow.decline_save_offer
    verb = "accept" if accept else "decline"
    return await run_update(
        client, customer_id, update, ans, f"offer:{offer_id}:{verb}:{ans.request_id}",
        deadline=settings.temporal_deadline_seconds,
    )


@router.post(
    "/{customer_id}/subscription/offers/{offer_id}/accept", response_model=SubscriptionView,
    responses=responses(400, 401, 404, 409, 413, 422, 502, 503),
)
async def accept_offer(
    customer_id: str, offer_id: str, sessions: SessionsDep, client: TemporalDep, settings: SettingsDep,
    body: AnswerBody | None = None,
) -> SubscriptionView:
    """Take the save offer: the cancellation is dropped and the pause, downgrade or coupon
    applies. 404: no such offer for this customer; 409: expired or already answered."""
    return await _answer(sessions, client, settings, customer_id, offer_id, body and body.request_id, accept=True)


@router.post(
    "/{customer_id}/subscription/offers/{offer_id}/decline", response_model=SubscriptionView,
    responses=responses(400, 401, 404, 409, 413, 422, 502, 503),
)
async def decline_offer(
    customer_id: str, offer_id: str, sessions: SessionsDep, client: TemporalDep, settings: SettingsDep,
    body: AnswerBody | None = None,
) -> SubscriptionView:
    """Say no to the save offer: the cancellation goes ahead as it was asked."""
    return await _answer(sessions, client, settings, customer_id, offer_id, body and body.request_id, accept=False)
