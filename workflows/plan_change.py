"""PlanChangeWorkflow (``customer-{id}/plan-change/{request}``): a downgrade at the period end.

The customer keeps the tier they paid for until the paid period ends; then the
subscription moves to the lower tier without proration and the customer's workflow
hears the result. Canceling this child (a new change, a cancellation) drops the change.
If the subscription has ended by then (canceled in Stripe, unheard by the entity), there
is nothing to downgrade: the child tells the entity and ends with ``change_dropped``.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.stripe import StripeActivities
    from lifecycle.contracts.billing import (
        OUTCOME_CHANGE_DROPPED,
        ChangePlanInput,
        PlanChangeInput,
        SubscriptionResult,
    )
    from lifecycle.contracts.events import PlanChanged, PlanChangeDropped
    from workflows.campaign import tell_customer
    from workflows.controls import ControlledCampaign, Controls
    from workflows.options import PLAN_CHANGE_RETRY, STRIPE_TIMEOUT


@workflow.defn
class PlanChangeWorkflow(ControlledCampaign):
    @workflow.init
    def __init__(self, input: PlanChangeInput) -> None:
        self.controls = Controls("plan-change")

    @workflow.run
    async def run(self, input: PlanChangeInput) -> SubscriptionResult:
        self.controls.begin()
        # billing: the downgrade applies at the period end whatever ops do
        await self.controls.wait_for_step(
            "apply_downgrade", input.apply_at, marketing=False, skippable=False,
            next_step=f"move to {input.plan}", next_step_at=input.apply_at,
        )
        self.controls.step_done("apply_downgrade")
        wf_id = workflow.info().workflow_id
        try:
            result: SubscriptionResult = await self._apply(input, wf_id)
        except ActivityError as err:
            cause = err.cause
            if not (isinstance(cause, ApplicationError) and cause.type == "SubscriptionEnded"):
                raise
            return await self._dropped(input, wf_id, cause.message)
        await tell_customer(
            input.customer_id,
            PlanChanged(workflow_id=wf_id, plan=result.plan, interval=result.interval, status=result.status),
            suffix="applied",
        )
        return result

    async def _apply(self, input: PlanChangeInput, wf_id: str) -> SubscriptionResult:
        return await workflow.execute_activity_method(
            StripeActivities.change_plan,
            ChangePlanInput(
                customer_id=input.customer_id,
                stripe_subscription_id=input.stripe_subscription_id,
                plan=input.plan,
                interval=input.interval,
                idempotency_key=f"{wf_id}:apply",
                proration_behavior="none",
            ),
            start_to_close_timeout=STRIPE_TIMEOUT,
            retry_policy=PLAN_CHANGE_RETRY,
        )

    async def _dropped(self, input: PlanChangeInput, wf_id: str, reason: str) -> SubscriptionResult:
        """The subscription ended before the period end: report, and end without failing."""
        try:
            await tell_customer(
                input.customer_id, PlanChangeDropped(workflow_id=wf_id, reason=reason), suffix="dropped"
            )
        except FailureError as err:  # the entity is gone: nothing to tell
            workflow.logger.info("plan change %s dropped, entity not told (%s)", wf_id, err)
        return SubscriptionResult(
            outcome=OUTCOME_CHANGE_DROPPED,
            stripe_subscription_id=input.stripe_subscription_id,
            reason=reason,
        )
