"""A timeline entry from workflow code, written once: the store activity with its timeout
and retry, keyed by the caller (a key per workflow step, so a retry records nothing twice)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.store import StoreActivities
    from lifecycle.contracts.timeline import RecordEventInput
    from workflows.options import STORE_RETRY, STORE_TIMEOUT


async def record_event(
    customer_id: str,
    *,
    key: str,
    kind: str,
    campaign: str | None = None,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
    from_stage: str | None = None,
    to_stage: str | None = None,
) -> None:
    """Put ``kind`` on the customer's timeline (at ``at``, default now)."""
    await workflow.execute_activity_method(
        StoreActivities.record_event,
        RecordEventInput(
            customer_id=customer_id,
            event_key=key,
            kind=kind,
            occurred_at=at or workflow.now(),
            from_stage=from_stage,
            to_stage=to_stage,
            campaign=campaign,
            detail=detail or {},
        ),
        start_to_close_timeout=STORE_TIMEOUT,
        retry_policy=STORE_RETRY,
    )
