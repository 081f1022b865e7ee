"""Edited copies of workflows for tests/test_replay.py (a module of their own, so the
workflow sandbox can import it): each edit once unversioned and once behind workflow.patched.

- TrialWorkflow: a timer before the reminders.
- CustomerWorkflow, billing path (its Subscription, swapped for an edited copy): a grace
  timer before the trial conversion charges; an extra activity before a plan change
  reaches Stripe (in the ``change_subscription`` update).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.store import StoreActivities
    from lifecycle.contracts.billing import SubscriptionRequest, SubscriptionResult
    from lifecycle.contracts.campaigns import TrialInput
    from lifecycle.contracts.customer import CustomerWorkflowInput
    from lifecycle.contracts.timeline import RecordEventInput
    from workflows.customer import CustomerWorkflow
    from workflows.options import STORE_RETRY, STORE_TIMEOUT
    from workflows.subscription import Subscription
    from workflows.trial import TrialWorkflow


@workflow.defn(name="TrialWorkflow")
class TrialWorkflowWithAnUnversionedTimer(TrialWorkflow):
    """Today's trial with one unversioned edit: a pause before the reminders."""

    @workflow.run
    async def run(self, input: TrialInput) -> str:
        await workflow.sleep(timedelta(hours=1))
        return await super().run(input)


@workflow.defn(name="TrialWorkflow")
class TrialWorkflowWithAPatchedTimer(TrialWorkflow):
    """The same edit behind workflow.patched: safe for running workflows."""

    @workflow.run
    async def run(self, input: TrialInput) -> str:
        if workflow.patched("pause-before-reminders"):
            await workflow.sleep(timedelta(hours=1))
        return await super().run(input)


# --- CustomerWorkflow's billing path (workflows/subscription.py) ---------------------------------


class _SubscriptionWithAnUnversionedConversionPause(Subscription):
    async def convert_trial(self, cause: str) -> None:
        await workflow.sleep(timedelta(hours=1))
        await super().convert_trial(cause)


class _SubscriptionWithAPatchedConversionPause(Subscription):
    async def convert_trial(self, cause: str) -> None:
        if workflow.patched("trial-conversion-grace"):
            await workflow.sleep(timedelta(hours=1))
        await super().convert_trial(cause)


@workflow.defn(name="CustomerWorkflow")
class CustomerWorkflowWithAnUnversionedConversionPause(CustomerWorkflow):
    """Today's entity with one unversioned billing edit: a grace period before the trial
    conversion charges the card."""

    subscription_type = _SubscriptionWithAnUnversionedConversionPause

    @workflow.run
    async def run(self, input: CustomerWorkflowInput) -> None:
        await super().run(input)


@workflow.defn(name="CustomerWorkflow")
class CustomerWorkflowWithAPatchedConversionPause(CustomerWorkflow):
    """The same edit behind workflow.patched: safe for running workflows."""

    subscription_type = _SubscriptionWithAPatchedConversionPause

    @workflow.run
    async def run(self, input: CustomerWorkflowInput) -> None:
        await super().run(input)


async def _record_plan_change_request(customer_id: str, req: SubscriptionRequest) -> None:
    """The edit: write the request to the customer's timeline before Stripe is called."""
    await workflow.execute_activity_method(
        StoreActivities.record_event,
        RecordEventInput(
            customer_id=customer_id,
            event_key=f"{workflow.info().workflow_id}:plan-change-requested:{req.request_id}",
            kind="plan_change_requested",
            occurred_at=workflow.now(),
            detail={"plan": req.plan, "interval": req.interval},
        ),
        start_to_close_timeout=STORE_TIMEOUT,
        retry_policy=STORE_RETRY,
    )


class _SubscriptionWithAnUnversionedChangeActivity(Subscription):
    async def change(self, req: SubscriptionRequest) -> SubscriptionResult:
        await _record_plan_change_request(self._state.customer_id, req)
        return await super().change(req)


class _SubscriptionWithAPatchedChangeActivity(Subscription):
    async def change(self, req: SubscriptionRequest) -> SubscriptionResult:
        if workflow.patched("record-plan-change-request"):
            await _record_plan_change_request(self._state.customer_id, req)
        return await super().change(req)


@workflow.defn(name="CustomerWorkflow")
class CustomerWorkflowWithAnUnversionedChangeActivity(CustomerWorkflow):
    """Today's entity with one unversioned edit to ``change_subscription``: an extra
    activity before a plan change reaches Stripe."""

    subscription_type = _SubscriptionWithAnUnversionedChangeActivity

    @workflow.run
    async def run(self, input: CustomerWorkflowInput) -> None:
        await super().run(input)


@workflow.defn(name="CustomerWorkflow")
class CustomerWorkflowWithAPatchedChangeActivity(CustomerWorkflow):
    """The same edit behind workflow.patched."""

    subscription_type = _SubscriptionWithAPatchedChangeActivity

    @workflow.run
    async def run(self, input: CustomerWorkflowInput) -> None:
        await super().run(input)
