"""The workflow side of sending a campaign email: one call per policy step.

Campaign workflows call :func:`send_step_email`; the idempotency key is the workflow
id plus the step name, so an activity retry (or a replay) never sends twice.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.email import EmailActivities
    from activities.store import StoreActivities
    from lifecycle.messages import RecordEventInput, SendEmailInput, SendEmailResult
    from lifecycle.policy import EmailStep

# Provider outages and template fixes are waited out: retries back off to every 10
# minutes and never give up, so no email is lost; ops see the pending activity and its
# error in the Web UI. Business refusals (unknown customer) are non-retryable.
EMAIL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
)
STORE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))


def step_key(step_name: str) -> str:
    return f"{workflow.info().workflow_id}/{step_name}"


async def send_step_email(
    customer_id: str, campaign: str, step: EmailStep, context: dict[str, Any] | None = None
) -> SendEmailResult:
    return await workflow.execute_activity_method(
        EmailActivities.send_email,
        SendEmailInput(
            customer_id=customer_id,
            template=step.template,
            idempotency_key=step_key(step.name),
            campaign=campaign,
            step=step.name,
            category=step.category,
            context=context or {},
        ),
        start_to_close_timeout=timedelta(seconds=60),
        retry_policy=EMAIL_RETRY,
    )


async def record_step_skipped(customer_id: str, campaign: str, step: EmailStep, reason: str) -> None:
    """Put a step that was not sent, and why, on the customer's timeline."""
    await workflow.execute_activity_method(
        StoreActivities.record_event,
        RecordEventInput(
            customer_id=customer_id,
            event_key=step_key(step.name) + ":skipped",
            kind="email_skipped",
            occurred_at=workflow.now(),
            campaign=campaign,
            detail={"step": step.name, "template": step.template, "reason": reason},
        ),
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=STORE_RETRY,
    )


async def sleep_until(when: Any) -> None:
    """Durable timer to a UTC instant (no-op when it is already past)."""
    delay = when - workflow.now()
    if delay > timedelta(0):
        await workflow.sleep(delay)
