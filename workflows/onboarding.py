"""OnboardingWorkflow (``customer-{id}/onboarding``): welcome now, tips on the policy's days.

A step is skipped (and the skip recorded on the timeline) once the customer has done
what it teaches; activation facts arrive by the ``activation`` signal.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from lifecycle.contracts.campaigns import CampaignStatus, OnboardingInput
    from workflows.campaign import report_finished
    from workflows.controls import SKIPPED_BY_OPS, ControlledCampaign, Controls
    from workflows.email_step import record_step_skipped, send_step_email

CAMPAIGN = "onboarding"


@workflow.defn
class OnboardingWorkflow(ControlledCampaign):
    @workflow.init
    def __init__(self, input: OnboardingInput) -> None:
        self.controls = Controls(CAMPAIGN)
        self._facts: set[str] = set(input.activation_facts)
        self._done: list[str] = []
        self._next: tuple[str, object] | None = None

    @workflow.signal
    def activation(self, fact: str) -> None:
        self._facts.add(fact)

    @workflow.query
    def status(self) -> CampaignStatus:
        name, at = self._next if self._next else (None, None)
        return CampaignStatus(CAMPAIGN, name, at, list(self._done))  # type: ignore[arg-type]  # at: None once finished

    @workflow.query
    def activation_facts(self) -> list[str]:
        return sorted(self._facts)

    @workflow.run
    async def run(self, input: OnboardingInput) -> str:
        self.controls.begin()
        started = workflow.now()
        sent = skipped = 0
        steps = sorted(input.steps, key=lambda s: s.day)
        for i, step in enumerate(steps):
            at = started + timedelta(seconds=step.day * input.day_seconds)
            after = steps[i + 1] if i + 1 < len(steps) else None
            self._next = (step.name, at)
            due = await self.controls.wait_for_step(
                step.name,
                at,
                marketing=step.category == "marketing",
                next_step=after.name if after else None,
                next_step_at=started + timedelta(seconds=after.day * input.day_seconds) if after else None,
            )
            if not due:
                await record_step_skipped(input.customer_id, CAMPAIGN, step, SKIPPED_BY_OPS)
                skipped += 1
            elif step.skip_if and step.skip_if in self._facts:
                await record_step_skipped(
                    input.customer_id, CAMPAIGN, step, f"goal already met: {step.skip_if}"
                )
                skipped += 1
            else:
                await send_step_email(
                    input.customer_id, CAMPAIGN, step, {"step": step.name}, controls=self.controls
                )
                sent += 1
            self._done.append(step.name)
            self.controls.step_done(step.name)
        self._next = None
        await self.controls.finished(end_reported=True)
        outcome = f"completed: {sent} sent, {skipped} skipped"
        await report_finished(input.customer_id, CAMPAIGN, outcome)
        return outcome
