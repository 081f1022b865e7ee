"""Database activities for the workflows: the customer's timeline and stage."""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from lifecycle.messages import RecordEventInput
from lifecycle.models import Customer, LifecycleEvent


class StoreActivities:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._sessions = session_factory

    @activity.defn(name="record_event")
    async def record_event(self, input: RecordEventInput) -> bool:
        """Record a timeline entry once (by ``event_key``); a stage change also updates the customer.

        Returns False when the entry was already recorded (an activity retry).
        """
        return await asyncio.to_thread(self._record_event, input)

    def _record_event(self, input: RecordEventInput) -> bool:
        with self._sessions() as session:
            already = session.scalar(
                select(LifecycleEvent.id).where(LifecycleEvent.event_key == input.event_key)
            )
            if already is not None:
                return False
            customer = session.get(Customer, input.customer_id)
            if customer is None:
                raise ApplicationError(
                    f"unknown customer {input.customer_id!r}", type="UnknownCustomer", non_retryable=True
                )
            session.add(
                LifecycleEvent(
                    event_key=input.event_key,
                    customer_id=input.customer_id,
                    kind=input.kind,
                    from_stage=input.from_stage,
                    to_stage=input.to_stage,
                    campaign=input.campaign,
                    detail=input.detail,
                    occurred_at=input.occurred_at,
                )
            )
            if input.kind == "stage_changed" and input.to_stage:
                customer.stage = input.to_stage
                if "plan" in input.detail and input.detail["plan"]:
                    customer.plan_code = input.detail["plan"]
                if input.detail.get("trial_ends_at"):
                    customer.trial_ends_at = datetime.fromisoformat(input.detail["trial_ends_at"])
            try:
                session.commit()
            except IntegrityError:
                session.rollback()  # a concurrent attempt recorded it first
                return False
            return True
