"""The ops controls of the customer's entity: the actions support takes on one customer
and the entity's part of why-waiting. A plain object the entity owns (like its
Subscription), built with the state and a callback for when the running campaigns change.

Each action is the entity's validated update ``ops_action``: the validator refuses with
the reason (``action_refusal``; nothing changes), the handler acts — signals the campaign
children (pause, resume, skip-step), cancels one, resends an email — and records who did
it and why in the audit trail and on the timeline (the ops activity, once per action id).

What the campaigns wait for: each child reports it (``campaign_wait``); the entity keeps
the last report of each running child run (by workflow id and run id: a campaign started
again under the same id is another run) and upserts ``Waits`` and ``NextStepAt`` from them
(``entity_waits``), so ``lifecycle customers list`` answers from the entities alone.
"""

from __future__ import annotations

from collections.abc import Callable

from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from activities.email import EmailActivities
    from activities.ops import OpsActivities
    from lifecycle.contracts.cards import CARD_EXPIRY_ID_PART
    from lifecycle.contracts.customer import CustomerState
    from lifecycle.contracts.ids import USAGE_CAMPAIGN, customer_workflow_id
    from lifecycle.contracts.ops import (
        CANCEL_CAMPAIGN,
        EXTEND_GRACE,
        PAUSE,
        PAUSE_SIGNAL,
        RESEND,
        RESUME,
        RESUME_SIGNAL,
        RETRY_NOW,
        SKIP_STEP,
        SKIP_STEP_SIGNAL,
        WAIT_NOTHING,
        AuditEntryInput,
        CampaignWait,
        CampaignWaiting,
        OpsAction,
        OpsActionResult,
        ResendEmailInput,
        Waiting,
        WhyWaiting,
        action_refusal,
        entity_waits,
        wait_key,
    )
    from lifecycle.contracts.search_attributes import NEXT_STEP_AT, NO_NEXT_STEP, WAITS
    from workflows.options import EMAIL_RETRY, SEND_TIMEOUT, STORE_RETRY, STORE_TIMEOUT

CANCELED_BY_OPS = "canceled by ops"


class Ops:
    def __init__(self, state: CustomerState, *, campaigns_changed: Callable[[], None]) -> None:
        self._state = state
        self._campaigns_changed = campaigns_changed
        self._upserted_waits: tuple[list[str], object] | None = None  # what visibility has
        # reports heard in this workflow task: a child whose report comes in the same task
        # as its start may not be listed as running yet, so these are not pruned now
        self._heard: tuple[object, set[str]] = (None, set())

    # --- what the campaigns wait for (the entity's Waits / NextStepAt) -------------------

    def on_campaign_wait(self, report: CampaignWait) -> None:
        """A child's report (they come in order from each child): kept until it finishes.
        Only this customer's own children count (their ids start with the entity's)."""
        if not report.workflow_id.startswith(f"{customer_workflow_id(self._state.customer_id)}/"):
            workflow.logger.warning("campaign_wait from %s ignored: not a campaign of this customer",
                                    report.workflow_id)
            return
        now = workflow.now()
        if self._heard[0] != now:
            self._heard = (now, set())
        self._heard[1].add(report.workflow_id)
        key = wait_key(report.workflow_id, report.run_id)
        # this run reports: any other run of the same workflow id has ended (one runs at a time)
        for old in [k for k, r in self._state.waits.items() if r.workflow_id == report.workflow_id and k != key]:
            del self._state.waits[old]
        if report.kind == WAIT_NOTHING:
            self._state.waits.pop(key, None)
        else:
            self._state.waits[key] = report
        self._upsert_waits()

    def run_ended(self, workflow_id: str, run_id: str | None) -> bool:
        """A child run reported its end: forget its report. False: another run of the same
        workflow id has reported since (it started again): the end is an older run's, and
        the one running stays listed."""
        if not run_id:
            return True
        newer = any(r.workflow_id == workflow_id and r.run_id not in (None, run_id) for r in self._state.waits.values())
        if self._state.waits.pop(wait_key(workflow_id, run_id), None) is not None:
            self._upsert_waits()
        return not newer

    def prune_waits(self) -> None:
        """Forget the reports of children that no longer run (cancelled, replaced, ended
        without a last report). Usage nudges are not listed as running: their own last
        report (``nothing``) removes them. A report heard in this same workflow task is
        kept (its child's start may land after it in the task). Nothing to do for an
        entity that has none."""
        if not self._state.waits:
            return
        running = set(self.running().values())
        if self._heard[0] == workflow.now():
            running |= self._heard[1]  # heard just now: its start may not be recorded yet
        gone = [k for k, r in self._state.waits.items()
                if r.workflow_id not in running and r.campaign != USAGE_CAMPAIGN]
        for k in gone:
            del self._state.waits[k]
        if gone:
            self._upsert_waits()

    def _upsert_waits(self) -> None:
        names, next_at = entity_waits(list(self._state.waits.values()))
        if self._upserted_waits == (names, next_at):
            return
        self._upserted_waits = (names, next_at)
        workflow.upsert_search_attributes([
            WAITS.value_set(names) if names else WAITS.value_unset(),
            NEXT_STEP_AT.value_set(next_at or NO_NEXT_STEP),
        ])

    # --- what runs -----------------------------------------------------------------------

    def running(self) -> dict[str, str]:
        """Campaign → workflow id: the campaigns, and a pending downgrade (billing)."""
        running = dict(self._state.campaigns)
        card = self._state.card
        if card is not None and card.reminders_workflow_id:  # the entity keeps it with the card
            running[CARD_EXPIRY_ID_PART] = card.reminders_workflow_id
        if self._state.billing.pending_change_workflow:
            running["plan-change"] = self._state.billing.pending_change_workflow
        return running

    def answer(self) -> WhyWaiting:
        """The entity's part: its campaigns and their ids (each child answers for itself)."""
        return WhyWaiting(
            customer_id=self._state.customer_id,
            stage=self._state.stage,
            paused=self._state.paused,
            campaigns=[
                CampaignWaiting(
                    campaign=name, workflow_id=wf_id, step=None,
                    waiting=Waiting(WAIT_NOTHING, detail="ask the campaign (its waiting query)"),
                    paused=self._state.paused,
                )
                for name, wf_id in sorted(self.running().items())
            ],
        )

    # --- the update ----------------------------------------------------------------------

    def refusal(self, action: OpsAction) -> str | None:
        if action.action == CANCEL_CAMPAIGN and action.campaign == CARD_EXPIRY_ID_PART:
            return "card-expiry reminders follow the card on file and cannot be cancelled; skip a step instead"
        return action_refusal(action, running=self.running(), paused=self._state.paused)

    async def act(self, action: OpsAction) -> OpsActionResult:
        result = await self._apply(action)
        await workflow.execute_activity_method(
            OpsActivities.record_action,
            AuditEntryInput(
                action_id=action.action_id,
                customer_id=self._state.customer_id,
                action=action.action,
                actor=action.actor,
                reason=action.reason,
                occurred_at=workflow.now(),
                detail={
                    k: v for k, v in {
                        "campaign": action.campaign, "step": action.step, "days": action.days,
                        "message_id": action.message_id, "done": result.done,
                        "campaigns": result.campaigns or None, **action.applied,
                    }.items() if v is not None
                },
            ),
            start_to_close_timeout=STORE_TIMEOUT,
            retry_policy=STORE_RETRY,
        )
        return result

    async def _apply(self, action: OpsAction) -> OpsActionResult:
        kind = action.action
        if kind in (PAUSE, RESUME):
            self._state.paused = kind == PAUSE
            reached = await self._signal_all(PAUSE_SIGNAL if kind == PAUSE else RESUME_SIGNAL)
            if kind == RESUME:
                reached += await self._resume_nudges()
            words = "paused" if kind == PAUSE else "resumed"
            return OpsActionResult(kind, f"marketing {words} ({len(reached)} campaigns told)", reached,
                                   paused=self._state.paused)
        if kind == CANCEL_CAMPAIGN:
            name = action.campaign or ""
            child = self._state.campaigns.pop(name, None)
            if child is None:  # it finished after the validator looked
                return OpsActionResult(kind, f"{name} had already finished", paused=self._state.paused)
            self._state.outcomes[name] = CANCELED_BY_OPS
            self._campaigns_changed()
            try:
                await workflow.get_external_workflow_handle(child).cancel()
            except FailureError as err:  # it ended meanwhile: nothing left to cancel
                workflow.logger.info("campaign %s not cancelled (%s)", child, err)
            return OpsActionResult(kind, f"{name} cancelled", [name], paused=self._state.paused)
        if kind == SKIP_STEP:
            name = action.campaign or ""
            await self._signal(name, SKIP_STEP_SIGNAL, action.step or "")
            return OpsActionResult(kind, f"{name}: {action.step} skipped", [name], paused=self._state.paused)
        if kind == RESEND:
            sent = await workflow.execute_activity_method(
                EmailActivities.resend_email,
                ResendEmailInput(
                    customer_id=self._state.customer_id,
                    message_id=action.message_id or 0,
                    idempotency_key=f"{workflow.info().workflow_id}/resend/{action.action_id}",
                    now=workflow.now(),
                ),
                start_to_close_timeout=SEND_TIMEOUT,
                retry_policy=EMAIL_RETRY,
            )
            detail = f": {sent.reason}" if sent.reason else ""
            return OpsActionResult(kind, f"email {action.message_id} resent: {sent.status}{detail}",
                                   paused=self._state.paused)
        # extend-grace, retry-now: the starter gave them to the dunning child's update
        assert kind in (EXTEND_GRACE, RETRY_NOW), kind
        return OpsActionResult(kind, f"dunning: {kind} taken", ["dunning"], paused=self._state.paused)

    async def campaign_started(self, name: str) -> None:
        """A campaign started while marketing is paused starts paused."""
        if self._state.paused:
            await self._signal(name, PAUSE_SIGNAL)

    def nudge_started(self, child_id: str) -> None:
        """A usage nudge started while paused (its input says so) hears the resume."""
        if self._state.paused:
            self._state.held_nudges.append(child_id)

    async def _resume_nudges(self) -> list[str]:
        reached = []
        for child in self._state.held_nudges:
            try:
                await workflow.get_external_workflow_handle(child).signal(RESUME_SIGNAL)
                reached.append(child.split("/", 1)[1])  # usage/{metric}/{period}/{threshold}
            except FailureError as err:  # sent or skipped meanwhile
                workflow.logger.info("usage nudge %s not resumed (%s)", child, err)
        self._state.held_nudges = []
        return reached

    async def _signal_all(self, signal: str) -> list[str]:
        reached = []
        for name in sorted(self._state.campaigns):
            if await self._signal(name, signal):
                reached.append(name)
        return reached

    async def _signal(self, name: str, signal: str, *args: object) -> bool:
        child = self.running().get(name) if signal == SKIP_STEP_SIGNAL else self._state.campaigns.get(name)
        if not child:
            return False
        try:
            await workflow.get_external_workflow_handle(child).signal(signal, *args)  # by name
            return True
        except FailureError as err:  # it just finished
            workflow.logger.info("campaign %s not signalled (%s)", child, err)
            return False
