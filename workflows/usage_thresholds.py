"""The entity's side of usage thresholds (a helper the CustomerWorkflow owns).

A usage counter crossed 80 % or 100 % of a limit (``starter/signals/usage.py`` sends the
``usage_threshold`` event): the product hears it by webhook, and a
:class:`~workflows.usage_nudge.UsageNudgeWorkflow` sends one email per metric, period and
threshold (its id says which, so a second start is refused); a 100 % crossing supersedes
the 80 % nudge still waiting. A stage in the policy's ``skip_stages`` gets no email (the
timeline says why).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import FailureError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from lifecycle.contracts.campaigns import UsageNudgeInput
    from lifecycle.contracts.customer import CustomerEvent, CustomerState
    from lifecycle.contracts.events import UsageThreshold, payload_of
    from lifecycle.contracts.ids import usage_workflow_id
    from lifecycle.contracts.policy import CampaignPolicy
    from lifecycle.contracts.search_attributes import customer_search_attributes
    from lifecycle.contracts.tiers import Tiers
    from lifecycle.contracts.webhooks import USAGE_THRESHOLD_CROSSED
    from workflows import patches
    from workflows.notify import publish
    from workflows.ops import Ops
    from workflows.timeline import record_event
    from workflows.usage_nudge import UsageNudgeWorkflow


class UsageThresholds:
    """``_policy`` and ``_tiers`` follow the policy version the entity adopts."""

    def __init__(self, state: CustomerState, policy: CampaignPolicy, tiers: Tiers | None, ops: Ops) -> None:
        self._state = state
        self._policy = policy
        self._tiers = tiers
        self._ops = ops

    async def on_threshold(self, event: CustomerEvent) -> None:
        """A usage counter crossed 80 % or 100 %: one email per metric, period and threshold."""
        crossed = payload_of(event, UsageThreshold)
        cid = self._state.customer_id
        policy = self._policy.usage
        if workflow.patched(patches.WEBHOOKS_PUBLISH):
            await publish(cid, USAGE_THRESHOLD_CROSSED, {**crossed.to_data(), "stage": self._state.stage},
                          key=f"usage:{event.event_id}")
        if self._state.stage in policy.skip_stages:
            await record_event(
                cid, key=f"{workflow.info().workflow_id}:usage-skipped:{event.event_id}", kind="email_skipped",
                campaign="usage",
                detail={"metric": crossed.metric, "threshold": crossed.threshold,
                        "reason": f"customer is {self._state.stage}"},
            )
            return
        assert crossed.period_start is not None, f"usage event {event.event_id} has no period_start"
        nudge = UsageNudgeInput(
            customer_id=cid,
            metric=crossed.metric,
            threshold=crossed.threshold,
            used=crossed.used,
            limit=crossed.limit,
            limit_kind=crossed.limit_kind,
            period_start=crossed.period_start,
            period_end=crossed.period_end,
            plan=crossed.plan or self._state.plan,
            stage=self._state.stage,
            policy=policy,
            tiers=self._tiers,
            paused=self._state.paused,
        )
        if nudge.threshold >= 100 and workflow.patched(patches.USAGE_NUDGE_SUPERSEDE):
            # an 80 % nudge still waiting for quiet hours or the cap would now be stale
            stale = usage_workflow_id(cid, nudge.metric, nudge.period_start, 80)
            try:
                await workflow.get_external_workflow_handle(stale).signal(UsageNudgeWorkflow.supersede)
            except FailureError:
                pass  # already sent, or never started
        try:  # the id is per metric, period and threshold: a second start is refused
            await workflow.start_child_workflow(
                UsageNudgeWorkflow.run,
                nudge,
                id=usage_workflow_id(cid, nudge.metric, nudge.period_start, nudge.threshold),
                parent_close_policy=ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=customer_search_attributes(cid, self._state.plan, self._state.stage),
            )
            self._ops.nudge_started(usage_workflow_id(cid, nudge.metric, nudge.period_start, nudge.threshold))
        except WorkflowAlreadyStartedError:
            workflow.logger.info("usage email for %s already sent or under way", event.event_id)
