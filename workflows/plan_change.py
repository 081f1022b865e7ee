"""PlanChangeWorkflow (``customer-{id}/plan-change/{request}``): a downgrade at the period end.

The customer keeps the tier they paid for until the paid period ends; then the
subscription moves to the lower tier without proration and the customer's workflow
hears the result. Canceling this child (a new change, a cancellation) drops the change.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.stripe import StripeActivities
    from lifecycle.billing_messages import ChangePlanInput, PlanChangeInput, SubscriptionResult
    from lifecycle.messages import CustomerEvent, customer_workflow_id


@workflow.defn
class PlanChangeWorkflow:
    @workflow.run
    async def run(self, input: PlanChangeInput) -> SubscriptionResult:
        delay = input.apply_at - workflow.now()
        if delay > timedelta(0):
            await workflow.sleep(delay)
        wf_id = workflow.info().workflow_id
        result: SubscriptionResult = await workflow.execute_activity_method(
            StripeActivities.change_plan,
            ChangePlanInput(
                customer_id=input.customer_id,
                stripe_subscription_id=input.stripe_subscription_id,
                plan=input.plan,
                interval=input.interval,
                idempotency_key=f"{wf_id}:apply",
                proration_behavior="none",
            ),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=5),
                maximum_interval=timedelta(minutes=10),
                maximum_attempts=20,
            ),
        )
        await workflow.get_external_workflow_handle(customer_workflow_id(input.customer_id)).signal(
            "event",
            CustomerEvent(
                event_id=f"{wf_id}:applied",
                kind="billing.plan_changed",
                data={
                    "workflow_id": wf_id,
                    "plan": result.plan,
                    "interval": result.interval,
                    "status": result.status,
                },
            ),
        )
        return result
