"""A timeline entry from workflow code, written once: the store activity with its timeout
and retry, keyed by the caller (a key per workflow step, so a retry records nothing twice).

:func:`data_error` is how workflow code meets data it cannot decide on (a tier its
snapshot lacks, a billing period it cannot reckon): never an exception, which would fail
the workflow task again and again; a ``workflow_data_error`` entry naming what was unknown,
and the caller skips the step (``patches.DATA_ERRORS_RECORDED``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.store import StoreActivities
    from lifecycle.contracts.timeline import RecordEventInput
    from workflows import patches
    from workflows.options import STORE_RETRY, STORE_TIMEOUT

WORKFLOW_DATA_ERROR = "workflow_data_error"


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


async def data_error(
    customer_id: str,
    error: str,
    *,
    key: str,
    campaign: str | None,
    unknown: str,
    value: object,
    skipped: str,
) -> None:
    """``value`` (a ``unknown``: plan, interval, …) cannot be decided on: record it once by
    ``key`` and return, so the caller skips ``skipped`` and the workflow goes on. A history
    from before the patch raised here (its workflow task failed): it raises the same."""
    if not workflow.patched(patches.DATA_ERRORS_RECORDED):
        raise KeyError(error)
    workflow.logger.warning("%s: %s (%s skipped)", workflow.info().workflow_id, error, skipped)
    await record_event(
        customer_id, key=f"{key}:data-error", kind=WORKFLOW_DATA_ERROR, campaign=campaign,
        detail={"unknown": unknown, "value": value, "error": error, "skipped": skipped},
    )
