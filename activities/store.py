"""Database activities for the workflows: the customer's timeline and stage."""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from lifecycle.contracts.timeline import RecordEventInput
from lifecycle.db import add_timeline_event
from lifecycle.models import Customer


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
            customer = session.get(Customer, input.customer_id)
            if customer is None:
                raise ApplicationError(
                    f"unknown customer {input.customer_id!r}", type="UnknownCustomer", non_retryable=True
                )
            added = add_timeline_event(
                session,
                key=input.event_key,
                customer_id=input.customer_id,
                kind=input.kind,
                at=input.occurred_at,
                detail=input.detail,
                campaign=input.campaign,
                from_stage=input.from_stage,
                to_stage=input.to_stage,
            )
            if not added:
                return False
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
