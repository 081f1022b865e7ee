"""TrialWorkflow (``customer-{id}/trial``): reminders before the end, then convert or expire.

A customer who subscribes during the trial (the entity sends ``subscribed``) gets no
more reminders: each is recorded on the timeline as skipped, with the reason, at the
time it would have gone out, and the trial ends at its end with the outcome
``subscribed``. (Ending at once instead would change the timers of running trials.)
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from lifecycle.contracts.campaigns import CampaignStatus, TrialInput
    from workflows.campaign import report_finished
    from workflows.controls import SKIPPED_BY_OPS, ControlledCampaign, Controls
    from workflows.email_step import record_step_skipped, send_step_email

CAMPAIGN = "trial"
CONVERTED = "converted"
EXPIRED = "expired"
SUBSCRIBED = "subscribed"


@workflow.defn
class TrialWorkflow(ControlledCampaign):
    @workflow.init
    def __init__(self, input: TrialInput) -> None:
        self.controls = Controls(CAMPAIGN)
        self._input = input
        self._payment_method_on_file = input.payment_method_on_file
        self._subscribed = False
        self._done: list[str] = []
        self._next: tuple[str, object] | None = None

    @workflow.signal
    def payment_method_added(self) -> None:
        self._payment_method_on_file = True

    @workflow.signal
    def subscribed(self) -> None:
        """The customer subscribed during the trial: no more reminders."""
        self._subscribed = True

    @workflow.query
    def status(self) -> CampaignStatus:
        name, at = self._next if self._next else (None, None)
        return CampaignStatus(CAMPAIGN, name, at, list(self._done))  # type: ignore[arg-type]  # at: None once finished

    @workflow.query
    def payment_method_on_file(self) -> bool:
        return self._payment_method_on_file

    @workflow.run
    async def run(self, input: TrialInput) -> str:
        self.controls.begin()
        end = input.trial_ends_at
        reminders = sorted(input.reminders, key=lambda r: -r.days_before_end)
        for i, reminder in enumerate(reminders):
            at = end - timedelta(seconds=reminder.days_before_end * input.day_seconds)
            after = reminders[i + 1] if i + 1 < len(reminders) else None
            self._next = (reminder.name, at)
            if at < workflow.now():
                continue  # trial shorter than this reminder's lead time
            due = await self.controls.wait_for_step(
                reminder.name,
                at,
                marketing=reminder.category == "marketing",
                next_step=after.name if after else "end_of_trial",
                next_step_at=(
                    end - timedelta(seconds=after.days_before_end * input.day_seconds) if after else end
                ),
            )
            if not due:
                await record_step_skipped(input.customer_id, CAMPAIGN, reminder, SKIPPED_BY_OPS)
                self._done.append(reminder.name)
                self.controls.step_done(reminder.name)
                continue
            if self._subscribed:
                await record_step_skipped(
                    input.customer_id, CAMPAIGN, reminder, "the customer subscribed during the trial"
                )
                self._done.append(reminder.name)
                continue
            await send_step_email(
                input.customer_id,
                CAMPAIGN,
                reminder,
                {
                    "days_left": int(round(reminder.days_before_end)),
                    "trial_ends_at": end.isoformat(),
                    "has_payment_method": self._payment_method_on_file,
                    "plan_code": input.plan,
                },
                controls=self.controls,
            )
            self._done.append(reminder.name)
            self.controls.step_done(reminder.name)

        self._next = ("end_of_trial", end)
        # billing: converts or expires whatever ops do (never paused, never skipped)
        await self.controls.wait_for_step(
            "end_of_trial", end, marketing=False, skippable=False,
            next_step="convert" if self._payment_method_on_file else "expire", next_step_at=end,
        )
        if self._subscribed:
            outcome = SUBSCRIBED
        else:
            outcome = CONVERTED if self._payment_method_on_file else EXPIRED
        self._next = None
        self._done.append("end_of_trial")
        self.controls.step_done("end_of_trial")
        await self.controls.finished(end_reported=True)
        await report_finished(input.customer_id, CAMPAIGN, outcome)
        return outcome
