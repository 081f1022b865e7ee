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
    from workflows.email_step import record_step_skipped, send_step_email, sleep_until

CAMPAIGN = "onboarding"


@workflow.defn
class OnboardingWorkflow:
    @workflow.init
    def __init__(self, input: OnboardingInput) -> None:
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
        started = workflow.now()
        sent = skipped = 0
        for step in sorted(input.steps, key=lambda s: s.day):
            at = started + timedelta(seconds=step.day * input.day_seconds)
            self._next = (step.name, at)
            await sleep_until(at)
            if step.skip_if and step.skip_if in self._facts:
                await record_step_skipped(
                    input.customer_id, CAMPAIGN, step, f"goal already met: {step.skip_if}"
                )
                skipped += 1
            else:
                await send_step_email(input.customer_id, CAMPAIGN, step, {"step": step.name})
                sent += 1
            self._done.append(step.name)
        self._next = None
        outcome = f"completed: {sent} sent, {skipped} skipped"
        await report_finished(input.customer_id, CAMPAIGN, outcome)
        return outcome
