"""WinbackWorkflow (``customer-{id}/winback/{n}``): emails after a cancellation took
effect or a trial expired, each with the offer and a signed reactivation link.

The steps (day 7, 30, 60 in the default policy) wait on durable timers; the entity's
``reactivated`` or ``unsubscribed`` signal ends the campaign at once, and so does a send
the email service skips because the address is suppressed (unsubscribed, hard bounce,
spam report). With no answer ``lost_after_days`` after the last email the outcome is
``lost`` and the entity moves the customer to that stage.

The link is described here (purpose, path, valid until the last step; the email service
adds the policy's link lifetime and signs it), so no token lands in the history.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from lifecycle.contracts.campaigns import CampaignStatus
    from lifecycle.contracts.email import EMAIL_SKIPPED
    from lifecycle.contracts.winback import (
        WINBACK_BOUNCED,
        WINBACK_LOST,
        WINBACK_REACTIVATED,
        WINBACK_UNSUBSCRIBED,
        WinbackInput,
    )
    from workflows.campaign import report_finished
    from workflows.controls import SKIPPED_BY_OPS, ControlledCampaign, Controls
    from workflows.email_step import record_step_skipped, send_step_email

CAMPAIGN = "winback"
REACTIVATE_PURPOSE = "reactivate"
REACTIVATE_PATH = "/billing/reactivate"


@workflow.defn
class WinbackWorkflow(ControlledCampaign):
    @workflow.init
    def __init__(self, input: WinbackInput) -> None:
        self.controls = Controls(CAMPAIGN)
        self._stop: str | None = None
        self._done: list[str] = []
        self._next: tuple[str, object] | None = None

    @workflow.signal
    def reactivated(self) -> None:
        self._stop = self._stop or WINBACK_REACTIVATED

    @workflow.signal
    def unsubscribed(self) -> None:
        self._stop = self._stop or WINBACK_UNSUBSCRIBED

    @workflow.query
    def status(self) -> CampaignStatus:
        name, at = self._next if self._next else (None, None)
        return CampaignStatus(CAMPAIGN, name, at, list(self._done))  # type: ignore[arg-type]  # at: None once finished

    async def _wait_until_or_stop(self, delay: timedelta) -> bool:
        """Sleep ``delay``; True when a stop arrived first."""
        if self._stop is None and delay > timedelta(0):
            try:
                await workflow.wait_condition(lambda: self._stop is not None, timeout=delay)
            except TimeoutError:
                pass
        return self._stop is not None

    @workflow.run
    async def run(self, input: WinbackInput) -> str:
        controls = self.controls
        controls.begin()
        start = workflow.now()
        steps = sorted(input.steps, key=lambda s: s.day)
        day = timedelta(seconds=input.day_seconds)
        last = start + day * (steps[-1].day if steps else 0)
        for number, step in enumerate(steps, start=1):
            at = start + day * step.day
            self._next = (step.name, at)
            if controls.enabled:
                after = steps[number] if number < len(steps) else None
                due = await controls.wait_for_step(
                    step.name, at, marketing=step.category == "marketing",
                    next_step=after.name if after else "lost",
                    next_step_at=start + day * after.day if after else None,
                    stop=lambda: self._stop is not None,
                )
                if self._stop is not None:
                    break
                if not due:
                    await record_step_skipped(input.customer_id, CAMPAIGN, step, SKIPPED_BY_OPS)
                    self._done.append(step.name)
                    controls.step_done(step.name)
                    continue
            elif await self._wait_until_or_stop(at - workflow.now()):
                break
            result = await send_step_email(
                input.customer_id,
                CAMPAIGN,
                step,
                {
                    "step_number": number,
                    "plan_code": input.plan,
                    "variant": input.variant,
                    "percent_off": input.percent_off,
                    "duration_months": input.duration_months,
                    # the interval's price and the offer's words (an entity from before gives
                    # none: the templates' own monthly wording)
                    **({"offer": input.offer, "price": input.price} if input.offer else {}),
                    "links": {
                        "reactivate_url": {
                            "purpose": REACTIVATE_PURPOSE,
                            "path": REACTIVATE_PATH,
                            "until": last.isoformat(),
                            "claims": {"winback": input.n},
                        }
                    },
                },
                stop=lambda: self._stop is not None,
                stop_reason="the customer came back or opted out while the email waited",
                controls=controls,
            )
            self._done.append(step.name)
            controls.step_done(step.name)
            if result.status == EMAIL_SKIPPED and result.reason:
                if result.reason.startswith("unsubscribed"):
                    self._stop = self._stop or WINBACK_UNSUBSCRIBED
                elif result.reason.startswith("suppressed"):  # hard bounce, spam report
                    self._stop = self._stop or WINBACK_BOUNCED
            if self._stop is not None:
                break
        if self._stop is None:
            end = workflow.now() + day * input.lost_after_days
            self._next = ("lost", end)
            if controls.enabled:
                controls.on_step("lost", end, marketing=False, skippable=False)
            await self._wait_until_or_stop(end - workflow.now())
        outcome = self._stop or WINBACK_LOST
        self._next = None
        await controls.finished(end_reported=True)
        await report_finished(input.customer_id, CAMPAIGN, outcome)
        return outcome
