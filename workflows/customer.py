"""CustomerWorkflow (``customer-{id}``): the durable entity holding one customer's lifecycle.

It takes every event for the customer (the ``event`` signal, de-duplicated by our own
event id), decides which campaign runs, starts campaigns as child workflows with
deterministic ids and parent-close policy ABANDON, hears their outcome by signal, and
records every stage change in the database timeline and in search attributes.

Events are queued by the signal handler and handled one at a time by the main loop,
so handling order is arrival order and continue-as-new carries unhandled events over.

Every message of the entity is defined here: the ``event`` signal, the
``change_subscription`` update (with its validator) and the ``state`` query. The
subscription itself (Stripe calls, the billing state, the stage that follows it) is a
:class:`~workflows.subscription.Subscription` this workflow owns; the growth campaigns
(renewal reminders, expansion offer, team promotion) a :class:`~workflows.growth.entity.Growth`;
the usage thresholds' webhooks and nudges a :class:`~workflows.usage_thresholds.UsageThresholds`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError, FailureError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from lifecycle.contracts.billing import SubscriptionRequest, SubscriptionResult
    from lifecycle.contracts.campaigns import OnboardingInput, TrialInput
    from lifecycle.contracts.customer import (
        EVENT_SIGNAL,
        CustomerEvent,
        CustomerState,
        CustomerWorkflowInput,
    )
    from lifecycle.contracts.events import (
        Activation,
        CampaignFinished,
        EventKind,
        PaymentMethodAdded,
        payload_of,
    )
    from lifecycle.contracts.ids import (
        campaign_workflow_id,
        customer_workflow_id,
    )
    from lifecycle.contracts.ops import (
        CAMPAIGN_WAIT_SIGNAL,
        OPS_ACTION_UPDATE,
        WAITING_QUERY,
        CampaignWait,
        OpsAction,
        OpsActionResult,
        WhyWaiting,
    )
    from lifecycle.contracts.policy import CampaignPolicy
    from lifecycle.contracts.policy_versions import (
        POLICY_VERSION_SIGNAL,
        PolicyVersion,
        PolicyVersionNotice,
    )
    from lifecycle.contracts.search_attributes import (
        CAMPAIGNS,
        CUSTOMER_ID,
        LIFECYCLE_STAGE,
        PLAN,
        customer_search_attributes,
    )
    from lifecycle.contracts.stages import ACTIVE, CANCELED, EXPIRED, TRIALING
    from lifecycle.contracts.tiers import Tiers
    from lifecycle.contracts.webhooks import (
        CAMPAIGN_FINISHED,
        STAGE_CHANGED,
    )
    from lifecycle.contracts.winback import OfferAnswer, ReactivateRequest
    from workflows import patches
    from workflows.campaign import finished_workflow_id
    from workflows.card_on_file import CardReminders
    from workflows.dunning.entity import DunningSide
    from workflows.growth.entity import Growth
    from workflows.notify import publish
    from workflows.onboarding import OnboardingWorkflow
    from workflows.ops import Ops
    from workflows.policy_versions import PolicyVersions
    from workflows.retention.entity import RetentionSide
    from workflows.subscription import Subscription
    from workflows.timeline import record_event
    from workflows.trial import TrialWorkflow
    from workflows.usage_thresholds import UsageThresholds

SEEN_EVENT_IDS_KEPT = 500


@workflow.defn
class CustomerWorkflow:
    # the subscription's handler (a replay test swaps in an edited copy)
    subscription_type: ClassVar[type[Subscription]] = Subscription

    @workflow.init
    def __init__(self, input: CustomerWorkflowInput) -> None:
        self._input = input
        self._state = input.state or CustomerState(customer_id=input.customer_id, plan=input.plan)
        self._pending: list[CustomerEvent] = list(input.pending)
        self._seen: set[str] = set(self._state.seen_event_ids)
        self._handled_this_run = 0
        # The policy and tiers decided on: the input's (a new entity, a run of the previous
        # release), or the published version the state names, which run() loads first (a run
        # continued with its id); a signalled newer version is loaded by the main loop.
        self._policy: CampaignPolicy = input.policy or CampaignPolicy()
        self._tiers: Tiers | None = input.tiers
        self._versions = PolicyVersions(self._state, carried=input.policy is not None, adopt=self._adopt)
        # a new signup begins with its trial (stage recorded, campaigns started); billing
        # updates wait for that, and for the policy to be loaded (see Subscription.until_begun)
        self._begun = not (input.state is None and input.origin == "signup") and self._versions.loaded
        self._subscription = self.subscription_type(
            self._state,
            set_stage=self._set_stage,
            tell_campaign=self._tell_campaign,
            begun=lambda: self._begun,
            tiers=self._tiers,
        )
        self._dunning = DunningSide(self._state, set_stage=self._set_stage)
        self._growth = Growth(self._state, self._policy, self._tiers)
        self._ops = Ops(self._state, campaigns_changed=self._campaigns_changed)
        sub = self._subscription
        self._cards = CardReminders(self._state, self._policy)
        self._usage = UsageThresholds(self._state, self._policy, self._tiers, self._ops)
        self._retention = RetentionSide(
            self._state,
            self._policy,
            sub,
            set_stage=self._set_stage,
            start_campaign=self._start_campaign,
            tell_campaign=self._tell_campaign,
            enqueue=self._pending.append,
        )
        self._handlers: dict[EventKind, Callable[[CustomerEvent], Awaitable[None]]] = {
            EventKind.SIGNUP: self._on_signup,
            EventKind.ACTIVATION: self._on_activation,
            EventKind.PAYMENT_METHOD_ADDED: self._on_payment_method_added,
            EventKind.CAMPAIGN_FINISHED: self._on_campaign_finished,
            EventKind.UNSUBSCRIBED: self._on_unsubscribed,
            EventKind.RESUBSCRIBED: self._on_resubscribed,
            EventKind.USAGE_THRESHOLD: self._usage.on_threshold,
            EventKind.STRIPE_SUBSCRIPTION: self._on_stripe_subscription,
            EventKind.STRIPE_INVOICE_PAID: self._on_invoice_closed,
            EventKind.STRIPE_INVOICE_PAYMENT_FAILED: self._on_invoice_failed,
            EventKind.STRIPE_INVOICE_ACTION_REQUIRED: self._on_invoice_failed,
            EventKind.STRIPE_INVOICE_VOIDED: self._on_invoice_closed,
            EventKind.STRIPE_INVOICE_UNCOLLECTIBLE: self._on_invoice_closed,
            EventKind.INVOICE_MARKED_PAID: self._on_invoice_closed,
            EventKind.STRIPE_TRIAL_WILL_END: sub.on_billing_notice,
            EventKind.STRIPE_INVOICE_UPCOMING: sub.on_billing_notice,
            EventKind.STRIPE_CHECKOUT_COMPLETED: sub.on_billing_notice,
            EventKind.PLAN_CHANGED: sub.on_plan_changed,
            EventKind.PLAN_CHANGE_DROPPED: sub.on_plan_change_dropped,
            EventKind.DEFAULT_CARD: self._cards.on_default_card,
            EventKind.SAVE_OFFER_EXPIRED: self._retention.on_offer_expired,
            EventKind.PAUSE_ENDED: self._retention.on_pause_ended,
        }

    # --- messages -----------------------------------------------------------------------

    @workflow.signal(name=EVENT_SIGNAL)
    def event(self, event: CustomerEvent) -> None:
        """Every event for this customer. An id seen before is ignored (signals are not deduplicated for us)."""
        if event.event_id in self._seen:
            workflow.logger.info("duplicate event %s ignored", event.event_id)
            return
        self._seen.add(event.event_id)
        self._state.seen_event_ids.append(event.event_id)
        if len(self._state.seen_event_ids) > SEEN_EVENT_IDS_KEPT:
            dropped = self._state.seen_event_ids[:-SEEN_EVENT_IDS_KEPT]
            self._state.seen_event_ids = self._state.seen_event_ids[-SEEN_EVENT_IDS_KEPT:]
            self._seen.difference_update(dropped)
        self._pending.append(event)

    @workflow.signal(name=POLICY_VERSION_SIGNAL)
    def policy_version(self, notice: PolicyVersionNotice) -> None:
        """A policy version was published: the main loop loads the latest (an activity, so the
        history records which); the version this entity holds already is ignored."""
        self._versions.on_signal(notice)

    @workflow.update
    async def change_subscription(self, req: SubscriptionRequest) -> SubscriptionResult:
        """Create, change or cancel the subscription (the HTTP API's requests)."""
        if not self._begun and workflow.patched(patches.BILLING_WAIT_UNTIL_BEGUN):
            await self._subscription.until_begun()
        if req.action == "cancel" and req.detail.get("reason") and workflow.patched(patches.RETENTION_SAVE_OFFERS):
            result = await self._retention.cancel(req)  # may answer with a save offer
        else:
            result = await self._subscription.request(req)
            if req.action == "cancel" and self._state.winback.offer is not None and self._state.winback.offer.is_open:
                if workflow.patched(patches.RETENTION_CANCEL_WITHDRAWS_OFFER):
                    await self._retention.withdraw_open_offer()
        if workflow.patched(patches.RETENTION_CAMPAIGNS):
            await self._growth.sync_renewal()  # a cancel or plan change drops a waiting reminder
        return result

    @change_subscription.validator
    def _validate_change_subscription(self, req: SubscriptionRequest) -> None:
        """A request that does not fit the subscription is refused with the reason (the
        update fails, the workflow does not). Until the run's version is loaded the
        validator cannot judge (it would read the built-in catalog): it accepts, and the
        handler decides under the lock once the version is in (see ``_judged``)."""
        if not self._judged():
            return
        refusal = self._subscription.refusal(req)
        if refusal is not None:
            raise ApplicationError(refusal)

    @workflow.update
    async def accept_save_offer(self, ans: OfferAnswer) -> SubscriptionResult:
        """Take the save offer made to a cancellation (the cancellation is dropped)."""
        await self._versions.until_loaded()
        return await self._retention.answer(ans, accept=True)

    @workflow.update
    async def decline_save_offer(self, ans: OfferAnswer) -> SubscriptionResult:
        """Say no to the save offer: the cancellation goes ahead as asked."""
        await self._versions.until_loaded()
        return await self._retention.answer(ans, accept=False)

    @accept_save_offer.validator
    def _validate_accept_save_offer(self, ans: OfferAnswer) -> None:
        if self._judged():
            self._refuse(self._retention.answer_refusal(ans))

    @decline_save_offer.validator
    def _validate_decline_save_offer(self, ans: OfferAnswer) -> None:
        if self._judged():
            self._refuse(self._retention.answer_refusal(ans))

    @workflow.update
    async def reactivate(self, req: ReactivateRequest) -> SubscriptionResult:
        """Subscribe again after a cancellation or an expired trial (the reactivation page)."""
        await self._versions.until_loaded()
        return await self._retention.reactivate(req)

    @reactivate.validator
    def _validate_reactivate(self, req: ReactivateRequest) -> None:
        if self._judged():
            self._refuse(self._retention.reactivate_refusal(req))

    def _judged(self) -> bool:
        """Whether a validator can decide now: not in a run continued with a version id
        before that version is loaded (it would judge on the default policy and catalog).
        Each handler waits for the version and asks the same question again under the lock;
        a refusal there fails the update, not the workflow."""
        return self._versions.loaded

    @staticmethod
    def _refuse(refused: tuple[str, str] | None) -> None:
        if refused is not None:
            raise ApplicationError(refused[0], type=refused[1])

    @workflow.query
    def state(self) -> CustomerState:
        return self._state

    @workflow.update(name=OPS_ACTION_UPDATE)
    async def ops_action(self, action: OpsAction) -> OpsActionResult:
        """An ops action on this customer (pause, resume, cancel-campaign, skip-step, resend,
        ...; workflows/ops.py), recorded in the audit trail with who and why."""
        await self._versions.until_loaded()
        return await self._ops.act(action)

    @ops_action.validator
    def _validate_ops_action(self, action: OpsAction) -> None:
        refusal = self._ops.refusal(action)
        if refusal is not None:
            raise ApplicationError(refusal)

    @workflow.query(name=WAITING_QUERY)
    def waiting(self) -> WhyWaiting:
        """Why-waiting, the entity's part: its campaigns (each answers its own ``waiting``)."""
        return self._ops.answer()

    @workflow.signal(name=CAMPAIGN_WAIT_SIGNAL)
    def campaign_wait(self, report: CampaignWait) -> None:
        """A campaign child says what it waits for now (the entity's Waits / NextStepAt)."""
        if workflow.patched(patches.ENTITY_WAITS):
            self._ops.on_campaign_wait(report)

    # --- main loop ----------------------------------------------------------------------

    @workflow.run
    async def run(self, input: CustomerWorkflowInput) -> None:
        if not self._versions.loaded:  # continued with a version id: its policy and tiers first
            await self._versions.load()
            self._begun = True
        if input.state is None and input.origin == "signup":
            await self._begin_trial()
            self._begun = True
        self._retention.resume_timers()  # an open save offer's window, a pause (after continue-as-new)
        while True:
            await workflow.wait_condition(
                lambda: bool(self._pending) or self._should_continue_as_new() or self._versions.heard is not None
            )
            if self._versions.heard is not None:  # only this release's signal sets it
                self._versions.heard = None
                if workflow.patched(patches.POLICY_VERSIONS):
                    await self._versions.check_latest()
            while self._pending and not self._should_continue_as_new():
                event = self._pending.pop(0)
                older = self._an_older_runs_end(event)  # nothing to do: its newer run runs on
                if not older:
                    await self._dispatch(event)
                if workflow.patched(patches.RETENTION_CAMPAIGNS) and not older:
                    await self._growth.after_event(event)  # renewal, expansion, team promotion
                self._ops.prune_waits()  # a campaign it ended or replaced stops counting
                self._handled_this_run += 1
            if self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                # the next run decides on the latest version, carried by its id only
                by_version = workflow.patched(patches.POLICY_VERSIONS)
                if by_version:
                    await self._versions.check_latest()
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    by_version = self._state.policy_version is not None  # None: nothing published yet
                self._state.runs += 1
                workflow.continue_as_new(
                    CustomerWorkflowInput(
                        customer_id=self._state.customer_id,
                        plan=self._state.plan,
                        policy=None if by_version else self._policy,
                        state=self._state,
                        pending=self._pending,
                        max_events_per_run=self._input.max_events_per_run,
                        origin=self._input.origin,
                        tiers=None if by_version else self._tiers,
                    )
                )

    # --- policy versions (lifecycle/contracts/policy_versions.py) ---------------------------

    def _adopt(self, version: PolicyVersion) -> None:
        """Decide on ``version`` from now on. Campaigns already running keep the policy their
        input carried; the parts of the entity that decide on the policy follow it."""
        self._policy, self._tiers = version.policy, version.tiers
        self._state.policy_version = version.version_id
        self._subscription._tiers = version.tiers
        self._growth._policy, self._growth._tiers = version.policy, version.tiers
        self._cards._policy = version.policy
        self._usage._policy, self._usage._tiers = version.policy, version.tiers
        self._retention._policy = version.policy

    def _should_continue_as_new(self) -> bool:
        return (
            workflow.info().is_continue_as_new_suggested()
            or self._handled_this_run >= self._input.max_events_per_run
        )

    def _an_older_runs_end(self, event: CustomerEvent) -> bool:
        """A campaign's end from a run that another run of the same workflow id replaced
        (it reported since): forgotten, so it neither unlists the newer run nor moves the
        stage; any other event (and an end naming no run) goes on."""
        if event.kind != EventKind.CAMPAIGN_FINISHED:
            return False
        finished = payload_of(event, CampaignFinished)
        if not finished.run_id or not workflow.patched(patches.CAMPAIGN_REPORTS_BY_RUN):
            return False
        child_id = finished_workflow_id(event.event_id, finished.run_id)
        if self._ops.run_ended(child_id, finished.run_id):
            return False
        workflow.logger.info("%s run %s ended (%s); a newer run of it runs on",
                             child_id, finished.run_id, finished.outcome)
        return True

    async def _dispatch(self, event: CustomerEvent) -> None:
        try:
            handler = self._handlers.get(EventKind(event.kind))
        except ValueError:  # a kind this code does not know
            handler = None
        if handler is None:
            workflow.logger.warning("event %s of unknown kind %r ignored", event.event_id, event.kind)
            return
        await handler(event)

    # --- handlers -----------------------------------------------------------------------

    async def _begin_trial(self) -> None:
        policy = self._policy
        cid = self._state.customer_id
        self._state.trial_ends_at = workflow.now() + policy.days(policy.trial.length_days)
        if not self._state.billing.live:  # a paying customer is never moved back to trialing
            await self._set_stage(TRIALING, cause="signup")
        await self._start_campaign(
            "trial",
            TrialWorkflow.run,
            TrialInput(
                customer_id=cid,
                plan=self._state.plan,
                trial_ends_at=self._state.trial_ends_at,
                reminders=policy.trial.reminders,
                payment_method_on_file=self._state.payment_method_on_file,
                day_seconds=policy.day_seconds,
            ),
        )
        await self._start_campaign(
            "onboarding",
            OnboardingWorkflow.run,
            OnboardingInput(
                customer_id=cid,
                steps=policy.onboarding.steps,
                activation_facts=list(self._state.activation_facts),
                day_seconds=policy.day_seconds,
            ),
        )

    async def _on_signup(self, event: CustomerEvent) -> None:
        # The workflow exists, so this customer has signed up already: nothing to do.
        workflow.logger.debug("signup for %s: lifecycle already running", self._state.customer_id)

    async def _on_activation(self, event: CustomerEvent) -> None:
        fact = payload_of(event, Activation).fact
        if not fact or fact in self._state.activation_facts:
            return
        self._state.activation_facts.append(fact)
        await self._tell_campaign("onboarding", OnboardingWorkflow.activation, fact)

    async def _on_payment_method_added(self, event: CustomerEvent) -> None:
        pm = payload_of(event, PaymentMethodAdded).card
        if pm:  # a Stripe card (pm_...): attached when the trial converts
            self._state.payment_method_id = pm
            if self._dunning.running and workflow.patched(patches.DUNNING_HEARS_NEW_CARD):
                await self._dunning.on_card(event)  # the open invoices may be retried with it
        if self._state.payment_method_on_file:
            return
        self._state.payment_method_on_file = True
        await self._tell_campaign("trial", TrialWorkflow.payment_method_added)

    async def _on_unsubscribed(self, event: CustomerEvent) -> None:
        # Every marketing send also checks the suppression list; the state shows ops the opt-out.
        self._state.marketing_opt_out = True
        if "winback" in self._state.campaigns:  # only there with the retention-winback patch
            await self._retention.unsubscribed()

    async def _on_resubscribed(self, event: CustomerEvent) -> None:
        self._state.marketing_opt_out = False

    async def _on_campaign_finished(self, event: CustomerEvent) -> None:
        finished = payload_of(event, CampaignFinished)
        campaign, outcome = finished.campaign, finished.outcome
        if campaign == "dunning":  # only a run that started one hears this
            await self._dunning.on_finished(event)
            return
        self._state.campaigns.pop(campaign, None)
        self._state.outcomes[campaign] = outcome
        if workflow.patched(patches.WEBHOOKS_PUBLISH):
            await publish(self._state.customer_id, CAMPAIGN_FINISHED,
                          {"campaign": campaign, "outcome": outcome}, key=event.event_id)
        self._campaigns_changed()
        if campaign == "winback":  # only started with the retention-winback patch
            await self._retention.winback_finished(outcome, cause=event.event_id)
        if campaign == "trial" and self._state.stage == TRIALING:
            if outcome == "subscribed":  # the subscription decides the stage, not the trial
                await self._subscription.settle(event.event_id)
            elif outcome == "converted" and workflow.patched(patches.STRIPE_TRIAL_CONVERSION):
                await self._subscription.convert_trial(cause=event.event_id)  # a real subscription in Stripe
            else:
                await self._set_stage(ACTIVE if outcome == "converted" else EXPIRED, cause=event.event_id)

    # --- billing events that dunning hears too (workflows/dunning/entity.py) --------------

    async def _on_invoice_failed(self, event: CustomerEvent) -> None:
        await self._subscription.on_invoice_payment_failed(event)
        if workflow.patched(patches.DUNNING_CAMPAIGN):
            await self._dunning.on_failed(event)

    async def _on_invoice_closed(self, event: CustomerEvent) -> None:
        """Paid, voided, marked uncollectible or marked paid by ops: a running dunning
        decides the stage; without one, an invoice.paid moves it as before."""
        if await self._dunning.on_closed(event):
            return
        if event.kind == EventKind.STRIPE_INVOICE_PAID or event.kind == EventKind.INVOICE_MARKED_PAID:
            await self._subscription.on_invoice_paid(event)

    async def _on_stripe_subscription(self, event: CustomerEvent) -> None:
        await self._subscription.on_stripe_subscription(event)
        if self._dunning.ends_subscription(event) and workflow.patched(patches.DUNNING_HEARS_SUBSCRIPTION_END):
            await self._dunning.on_subscription_ended(event)  # Stripe ended it: so does the dunning
        if (
            self._state.billing.status == "past_due"
            and self._dunning.running is None
            and workflow.patched(patches.DUNNING_CAMPAIGN)
        ):
            await self._dunning.on_past_due(event)

    # --- helpers ------------------------------------------------------------------------

    async def _set_stage(self, stage: str, *, cause: str, reason: str | None = None) -> None:
        previous = self._state.stage if self._state.stage_changed_at else None
        if previous == stage:
            return
        now = workflow.now()
        await record_event(
            self._state.customer_id,
            key=f"{workflow.info().workflow_id}:stage:{previous}->{stage}:{cause}",
            kind="stage_changed",
            at=now,
            from_stage=previous,
            to_stage=stage,
            detail={
                "cause": cause,
                "plan": self._state.plan,
                "trial_ends_at": self._state.trial_ends_at.isoformat() if self._state.trial_ends_at else None,
                **({"reason": reason} if reason else {}),
            },
        )
        self._state.stage = stage
        self._state.stage_changed_at = now
        workflow.upsert_search_attributes(
            [
                CUSTOMER_ID.value_set(self._state.customer_id),
                PLAN.value_set(self._state.plan),
                LIFECYCLE_STAGE.value_set(stage),
            ]
        )
        if workflow.patched(patches.WEBHOOKS_PUBLISH):
            await publish(
                self._state.customer_id, STAGE_CHANGED,
                {"from_stage": previous, "to_stage": stage, "cause": cause, "plan": self._state.plan,
                 **({"reason": reason} if reason else {})},
                key=f"stage:{previous}->{stage}:{cause}",
            )
        if stage in (CANCELED, EXPIRED) and workflow.patched(patches.RETENTION_WINBACK):
            await self._retention.start_winback(stage)

    async def _start_campaign(self, campaign: str, run_fn: object, arg: object, *parts: str) -> None:
        """Start a campaign child (deterministic id, ABANDON on parent close); it reports back by signal."""
        child_id = campaign_workflow_id(self._state.customer_id, campaign, *parts)
        try:
            await workflow.start_child_workflow(
                run_fn,  # type: ignore[arg-type]  # one call for every campaign's run method
                arg,
                id=child_id,
                parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=customer_search_attributes(
                    self._state.customer_id, self._state.plan, self._state.stage
                ),
            )
        except WorkflowAlreadyStartedError:
            workflow.logger.info("campaign %s already started", child_id)
        self._state.campaigns[campaign] = child_id
        self._campaigns_changed()
        await self._ops.campaign_started(campaign)

    def _campaigns_changed(self) -> None:
        """The Campaigns search attribute follows the running campaigns."""
        if workflow.patched(patches.OPS_CAMPAIGNS_ATTRIBUTE):
            names = sorted(self._state.campaigns)
            workflow.upsert_search_attributes([CAMPAIGNS.value_set(names) if names else CAMPAIGNS.value_unset()])
        self._ops.prune_waits()

    async def _tell_campaign(self, campaign: str, signal: Callable[..., Any], *args: object) -> None:
        """Forward an event to a running campaign; a campaign that just finished is fine to miss."""
        child_id = self._state.campaigns.get(campaign)
        if not child_id:
            return
        try:
            await workflow.get_external_workflow_handle(child_id).signal(signal, *args)
        except FailureError as err:
            workflow.logger.info("campaign %s not signalled (%s)", child_id, err)


__all__ = ["CustomerWorkflow", "customer_workflow_id"]
