"""OfferWorkflow: one offer email the entity decided to make, sent and recorded.

Used for the expansion offer (``customer-{id}/expansion/{YYYYMMDD}``, the period that made
it two high periods in a row) and the team promotion (``customer-{id}/team-promotion``,
once). The entity decides (who, what, when: workflows/growth/entity.py); this child sends
through the email step (caps, quiet hours and unsubscribes apply: it may wait), records
the offer on the customer's timeline with what was offered and what became of the email,
and reports back.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from lifecycle.contracts.campaigns import CampaignStatus
    from lifecycle.contracts.growth import OfferInput
    from workflows.campaign import report_finished
    from workflows.controls import SKIPPED_BY_OPS, ControlledCampaign, Controls
    from workflows.email_step import send_step_email
    from workflows.timeline import record_event

OFFER_MADE = "offer_made"  # the timeline entry's kind


@workflow.defn
class OfferWorkflow(ControlledCampaign):
    @workflow.init
    def __init__(self, input: OfferInput) -> None:
        self.controls = Controls(input.campaign)
        self.controls.paused = input.paused  # due at once: a pause signal after the start comes too late
        self._input = input
        self._sent = False

    @workflow.query
    def status(self) -> CampaignStatus:
        step = self._input.step.name
        if self._sent:
            return CampaignStatus(self._input.campaign, None, None, [step])
        return CampaignStatus(self._input.campaign, step, None, [])

    @workflow.run
    async def run(self, input: OfferInput) -> str:
        controls = self.controls
        controls.begin()
        skip_reason = None
        if controls.enabled:  # the offer is due now: a pause holds it, a skip-step drops it
            due = await controls.wait_for_step(
                input.step.name, workflow.now(), marketing=input.step.category == "marketing"
            )
            skip_reason = None if due else SKIPPED_BY_OPS
        result = await send_step_email(
            input.customer_id, input.campaign, input.step, input.context, skip_reason=skip_reason, controls=controls
        )
        self._sent = True
        controls.step_done(input.step.name)
        await controls.finished(end_reported=True)
        await record_event(
            input.customer_id, key=f"{workflow.info().workflow_id}:offer", kind=OFFER_MADE, campaign=input.campaign,
            detail={**input.detail, "email": result.status, **({"reason": result.reason} if result.reason else {})},
        )
        await report_finished(input.customer_id, input.campaign, result.status)
        return result.status
