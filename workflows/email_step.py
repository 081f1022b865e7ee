"""The workflow side of an email step: ask the email activity, wait when it says "not yet".

Campaign workflows call :func:`send_step_email` for each policy step. The activity
decides (send now / wait until a UTC time / skip with a reason); when it says wait
(frequency cap, quiet hours in the customer's zone) this helper sleeps on a durable
timer and asks again, so a later step waits rather than drops. Decisions use
``workflow.now()``, so they follow workflow time (and time skipping in tests).

The idempotency key is the workflow id plus the step name, so an activity retry (or a
replay) never sends twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.email import EmailActivities
    from lifecycle.contracts.email import (
        EMAIL_DEFERRED,
        EMAIL_SKIPPED,
        SendEmailInput,
        SendEmailResult,
    )
    from lifecycle.contracts.ops import WAIT_ACTIVITY, Waiting, deferral_kind
    from lifecycle.contracts.policy import EmailStep
    from workflows.controls import SKIPPED_BY_OPS, Controls
    from workflows.options import EMAIL_RETRY, SEND_TIMEOUT
    from workflows.timeline import record_event

MIN_WAIT = timedelta(seconds=1)
MAX_ASKS = 100  # a step deferred this often is stuck; it is skipped, with the reason recorded


def step_key(step_name: str) -> str:
    return f"{workflow.info().workflow_id}/{step_name}"


async def _ask(inp: SendEmailInput) -> SendEmailResult:
    inp.now = workflow.now()
    return await workflow.execute_activity_method(
        EmailActivities.send_email,
        inp,
        start_to_close_timeout=SEND_TIMEOUT,
        retry_policy=EMAIL_RETRY,
    )


async def send_step_email(
    customer_id: str,
    campaign: str,
    step: EmailStep,
    context: dict[str, Any] | None = None,
    *,
    key: str | None = None,
    skip_reason: str | None = None,
    stop: Callable[[], bool] | None = None,
    stop_reason: str = "goal met while waiting to send",
    controls: Controls | None = None,
) -> SendEmailResult:
    """Send ``step`` to the customer, waiting out caps and quiet hours.

    Returns the final result: ``sent``, ``duplicate``, ``skipped`` (reason: unsubscribed,
    suppressed, …), ``holdout`` (A/B holdout: no email) or ``uncertain``.

    ``key``: the idempotency key (default: workflow id + step name).
    ``skip_reason``: the workflow already knows the step is pointless; the decision is
    recorded on the customer's timeline and nothing is sent.
    ``stop``: checked while waiting for the cap or quiet hours; when it turns true the
    step is skipped with ``stop_reason`` (recorded too).
    ``controls``: the campaign's ops controls (workflows/controls.py): the wait shows in
    its ``waiting`` answer, a skip-step ends it, a pause holds a marketing step.
    """
    inp = SendEmailInput(
        customer_id=customer_id,
        template=step.template,
        idempotency_key=key or step_key(step.name),
        campaign=campaign,
        step=step.name,
        category=step.category,
        context=dict(context or {}),
        variants=list(step.variants),
        holdout=step.holdout,
        skip_reason=skip_reason,
    )
    if controls is not None and controls.enabled:
        return await _send_controlled(inp, step, controls, stop, stop_reason)
    for _ in range(MAX_ASKS):
        result = await _ask(inp)
        if result.status != EMAIL_DEFERRED or result.not_before is None:
            return result
        wait = max(result.not_before - workflow.now(), MIN_WAIT)
        if stop is None:
            await workflow.sleep(wait)
            continue
        try:
            await workflow.wait_condition(stop, timeout=wait)
        except TimeoutError:
            continue
        inp.skip_reason = stop_reason
        return await _ask(inp)
    inp.skip_reason = f"still deferred after {MAX_ASKS} tries"
    result = await _ask(inp)
    return SendEmailResult(status=EMAIL_SKIPPED, reason=result.reason or inp.skip_reason)


async def _send_controlled(
    inp: SendEmailInput,
    step: EmailStep,
    controls: Controls,
    stop: Callable[[], bool] | None,
    stop_reason: str,
) -> SendEmailResult:
    """The same loop as send_step_email's, for a campaign with ops controls: each wait is
    what its ``waiting`` query answers, and a skip-step or a pause acts on it."""

    def interrupted() -> bool:
        return bool(stop and stop()) or controls.skip_requested(step.name)

    for _ in range(MAX_ASKS):
        controls.wait(Waiting(WAIT_ACTIVITY, detail="send_email"))
        result = await _ask(inp)
        if result.status != EMAIL_DEFERRED or result.not_before is None:
            return result
        controls.wait(Waiting(deferral_kind(result.reason), until=result.not_before, detail=result.reason or ""))
        try:
            await workflow.wait_condition(interrupted, timeout=max(result.not_before - workflow.now(), MIN_WAIT))
        except TimeoutError:
            if not await controls.until_unpaused(step.name, stop=stop):
                inp.skip_reason = SKIPPED_BY_OPS
                return await _ask(inp)
            if stop and stop():  # the campaign's own end came while the step was paused
                inp.skip_reason = stop_reason
                return await _ask(inp)
            continue
        if controls.skip_requested(step.name):
            controls.take_skip(step.name)
            inp.skip_reason = SKIPPED_BY_OPS
        else:
            inp.skip_reason = stop_reason
        return await _ask(inp)
    inp.skip_reason = f"still deferred after {MAX_ASKS} tries"
    result = await _ask(inp)
    return SendEmailResult(status=EMAIL_SKIPPED, reason=result.reason or inp.skip_reason)


async def record_step_skipped(customer_id: str, campaign: str, step: EmailStep, reason: str) -> None:
    """Put a step that was not sent, and why, on the customer's timeline."""
    await record_event(customer_id, key=step_key(step.name) + ":skipped", kind="email_skipped", campaign=campaign,
                       detail={"step": step.name, "template": step.template, "reason": reason})


async def sleep_until(when: datetime) -> None:
    """Durable timer to a UTC instant (no-op when it is already past)."""
    delay = when - workflow.now()
    if delay > timedelta(0):
        await workflow.sleep(delay)
