"""The customer's subscription, as CustomerWorkflow handles it: a plain object the workflow owns.

The workflow keeps the messages (the ``change_subscription`` update and its validator,
the ``event`` signal) and hands the billing part of each to :class:`Subscription`:

- an HTTP API create / change / cancel request (the validated update): a bad request is
  refused by the validator with the reason of :func:`refusal` (the workflow is
  untouched), a good one runs the Stripe activity and answers with the resulting
  subscription. Upgrades apply now with proration; downgrades wait for the end of the
  paid period in a ``customer-{id}/plan-change/{request}`` child workflow.
- A trial that converts (payment method on file) starts a real subscription.
- Billing events from the Stripe webhooks (``stripe.subscription``, ``stripe.invoice_paid``,
  ``stripe.invoice_payment_failed`` ...) move the stage: active, past_due, canceled.

It changes the workflow's state in place and reaches the rest of the entity only through
the callbacks it is built with (record a stage, signal a campaign).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.stripe import StripeActivities
    from lifecycle.contracts.billing import (
        INTERVALS,
        OUTCOME_ACTIVE,
        OUTCOME_CHANGE_SCHEDULED,
        OUTCOME_NO_PAYMENT_METHOD,
        OUTCOME_PAYMENT_FAILED,
        BillingState,
        CancelInput,
        ChangePlanInput,
        ImportCustomerInput,
        PlanChangeInput,
        ReactivateInput,
        StartSubscriptionInput,
        SubscriptionRequest,
        SubscriptionResult,
    )
    from lifecycle.contracts.customer import CustomerEvent, CustomerState
    from lifecycle.contracts.events import (
        PlanChanged,
        PlanChangeDropped,
        StripeSubscription,
        payload_of,
    )
    from lifecycle.contracts.ids import campaign_workflow_id
    from lifecycle.contracts.search_attributes import PLAN
    from lifecycle.contracts.stages import (
        ACTIVE,
        ENDED_STATUSES,
        EXPIRED,
        PAID_STAGES,
        PAST_DUE,
        TRIALING,
        stage_for_status,
    )
    from lifecycle.contracts.tiers import Tiers, tiers_from_catalog
    from lifecycle.contracts.webhooks import ENTITLEMENTS_CHANGED, SUBSCRIPTION_CHANGED
    from workflows import patches
    from workflows.notify import publish
    from workflows.options import CONVERSION_RETRY, STRIPE_RETRY, STRIPE_TIMEOUT
    from workflows.plan_change import PlanChangeWorkflow
    from workflows.timeline import data_error
    from workflows.trial import TrialWorkflow


class SetStage(Protocol):
    def __call__(self, stage: str, *, cause: str, reason: str | None = None) -> Awaitable[None]: ...


TellCampaign = Callable[..., Awaitable[None]]

# An interval change applies this long before the paid period ends: Stripe renews at the
# period end, and a move to monthly after the renewal would follow a year's invoice.
# Changing the interval resets the billing anchor, so monthly billing starts then.
INTERVAL_CHANGE_LEAD = timedelta(hours=1)  # (campaign, the campaign's signal method, *args)


def terms(tiers: Tiers | None) -> Tiers:
    """The tiers a decision reads: the workflow's snapshot; for a workflow started before
    it took one (no snapshot in its input), the catalog, read when deciding as before."""
    return tiers if tiers is not None else tiers_from_catalog()


def refusal(req: SubscriptionRequest, b: BillingState, plans: list[str]) -> str | None:
    """Why ``req`` does not fit a customer whose subscription is ``b`` (None: it does);
    ``plans``: the tier codes there are.

    Pure: the update's validator refuses with it, and the update asks again under the lock.
    """
    if req.action not in ("create", "change", "cancel"):
        return f"action: expected create, change or cancel, got {req.action!r}"
    if req.plan is not None and req.plan not in plans:
        return f"plan: unknown plan {req.plan!r}; expected one of {', '.join(plans)}"
    if req.interval is not None and req.interval not in INTERVALS:
        return f"interval: expected one of {', '.join(INTERVALS)}, got {req.interval!r}"
    if req.action == "create":
        if not req.plan:
            return "plan: required to subscribe"
        if b.live and not b.cancel_at_period_end:
            return (
                f"already subscribed to {b.plan} ({b.interval}ly, {b.status}); "
                "use PATCH to change the plan"
            )
    elif req.action == "change":
        if not b.live:
            return "no active subscription to change; subscribe first (POST)"
        if not req.plan and not req.interval:
            return "plan or interval: give at least one to change"
        plan, interval = req.plan or b.plan, req.interval or b.interval
        if (plan, interval) == (b.plan, b.interval) and not b.pending_plan:
            return f"already on {plan} ({interval}ly)"
    else:
        if not b.live:
            return "no active subscription to cancel"
        if b.cancel_at_period_end and not req.at_once:
            return "already set to cancel at the end of the period"
    return None


def holding_for_offer(state: CustomerState) -> bool:
    """Stripe's ``cancel_at_period_end`` only holds an open save offer
    (workflows/retention/entity.py): the customer has not yet canceled."""
    b, offer = state.billing, state.winback.offer
    return b.cancel_at_period_end and offer is not None and offer.is_open and offer.holds_cancel


def as_asked(state: CustomerState) -> BillingState:
    """The billing state as the customer asked for it: a cancel at period end that only
    holds an open save offer is not yet the customer's cancellation, so a plain cancel
    still goes ahead, a subscribe is refused as before the offer and the renewal reminders
    go on (workflows/growth/entity.py)."""
    if holding_for_offer(state):
        return dataclasses.replace(state.billing, cancel_at_period_end=False)
    return state.billing


def subscription_facts(b: BillingState) -> dict[str, Any]:
    """What ``subscription.changed`` tells the product (empty: no subscription yet)."""
    if not b.stripe_subscription_id:
        return {}
    return {
        "stripe_subscription_id": b.stripe_subscription_id,
        "status": b.status,
        "plan": b.plan,
        "interval": b.interval,
        # a price billed every few intervals (quarterly: month x3); absent when 1, as before
        **({"interval_count": b.interval_count} if b.interval_count != 1 else {}),
        "cancel_at_period_end": b.cancel_at_period_end,
        "current_period_end": b.current_period_end.isoformat() if b.current_period_end else None,
        "pending_plan": b.pending_plan,
    }


class Subscription:
    """The customer's subscription: Stripe calls, the billing state and the stage that follows it."""

    def __init__(
        self,
        state: CustomerState,
        *,
        set_stage: SetStage,
        tell_campaign: TellCampaign,
        begun: Callable[[], bool],
        tiers: Tiers | None = None,
    ) -> None:
        self._state = state
        self._set_stage = set_stage
        self._tell_campaign = tell_campaign
        self._begun = begun
        self._tiers = tiers
        # one billing change at a time: updates and billing events await Stripe and timers
        self.lock = asyncio.Lock()

    @property
    def _billing(self) -> BillingState:
        return self._state.billing

    async def until_begun(self) -> None:
        """Billing waits for the entity to begin: a signup records its trial stage first, so
        a subscription answered meanwhile is not overwritten by "trialing"."""
        if not self._begun():
            await workflow.wait_condition(self._begun)

    # --- the update the HTTP API calls -------------------------------------------------------

    def refusal(self, req: SubscriptionRequest) -> str | None:
        """Why ``req`` is refused now (None: it is not): the validator's answer."""
        return refusal(req, self._as_asked(), terms(self._tiers).codes) or self.held_change(req)

    def _as_asked(self) -> BillingState:
        return as_asked(self._state)

    def held_change(self, req: SubscriptionRequest) -> str | None:
        """Why a plan change waits: an open save offer holds the cancellation in Stripe
        (``cancel_at_period_end``), so a prorated change would be charged now while Stripe
        still ends the subscription at the period end."""
        offer = self._state.winback.offer
        if req.action == "change" and offer is not None and holding_for_offer(self._state):
            return (f"a save offer ({offer.offer_id}) holds the cancellation until it is answered: "
                    "accept or decline it before changing the plan")
        return None

    async def request(self, req: SubscriptionRequest) -> SubscriptionResult:
        """Carry out a create / change / cancel request (the validator accepted it)."""
        async with self.lock:
            # The validator ran before this request waited for the lock; a request that ran
            # meanwhile (e.g. another create) may have changed the state: check it again.
            why = refusal(req, self._as_asked(), terms(self._tiers).codes)
            if why is None and (held := self.held_change(req)) and workflow.patched(patches.RETENTION_HOLD_REFUSES_CHANGE):
                why = held
            if why is not None and workflow.patched(patches.BILLING_RECHECK_UNDER_LOCK):
                raise ApplicationError(why, type="SubscriptionConflict", non_retryable=True)
            b = self._billing
            if req.action == "create":
                if b.live and b.cancel_at_period_end:
                    return await self._reactivate(req)
                return await self._subscribe(req)
            if req.action == "change":
                return await self.change(req)
            return await self._cancel(req)

    async def settle(self, cause: str) -> None:
        """Follow the subscription's status now (under the lock)."""
        async with self.lock:
            await self.follow_status(cause)

    def _key(self, req: SubscriptionRequest, step: str) -> str:
        return f"{workflow.info().workflow_id}:subscription:{req.request_id}:{step}"

    async def _stripe(self, fn: Any, arg: Any, retry_policy: RetryPolicy = STRIPE_RETRY) -> Any:
        """One Stripe activity (any of StripeActivities' methods: hence Any)."""
        try:
            return await workflow.execute_activity_method(
                fn,
                arg,
                start_to_close_timeout=STRIPE_TIMEOUT,
                retry_policy=retry_policy,
            )
        except ActivityError as err:
            cause = err.cause
            message = cause.message if isinstance(cause, FailureError) else str(err)
            kind = cause.type if isinstance(cause, ApplicationError) else None
            # the activity's details (field, Stripe's code) go on to the API's answer
            details = tuple(cause.details) if isinstance(cause, ApplicationError) else ()
            raise ApplicationError(message, *details, type=kind or "StripeFailed", non_retryable=True) from err

    async def _subscribe(self, req: SubscriptionRequest) -> SubscriptionResult:
        assert req.plan
        result: SubscriptionResult = await self._stripe(
            StripeActivities.start_subscription,
            StartSubscriptionInput(
                customer_id=self._state.customer_id,
                plan=req.plan,
                interval=req.interval or "month",
                idempotency_key=self._key(req, "start"),
                payment_method_id=req.detail.get("payment_method_id"),
            ),
        )
        if result.outcome == OUTCOME_NO_PAYMENT_METHOD:
            raise ApplicationError(
                "payment method: none on file in Stripe; add a card first", type="NoPaymentMethod"
            )
        await self._apply_result(result, cause=f"subscription:{req.request_id}")
        return result

    async def _reactivate(self, req: SubscriptionRequest) -> SubscriptionResult:
        result: SubscriptionResult = await self._stripe(
            StripeActivities.reactivate_subscription,
            ReactivateInput(
                customer_id=self._state.customer_id,
                idempotency_key=self._key(req, "reactivate"),
                stripe_subscription_id=self._billing.stripe_subscription_id,
                plan=req.plan,
                interval=req.interval or self._billing.interval or "month",
            ),
        )
        await self._apply_result(result, cause=f"subscription:{req.request_id}")
        b = self._billing
        wanted = (req.plan or b.plan, req.interval or b.interval)
        if b.live and wanted != (b.plan, b.interval) and workflow.patched(patches.BILLING_REACTIVATE_TO_PLAN):
            # The request named another tier or interval: move to it like a PATCH would
            # (an upgrade now, prorated; a downgrade at the period end), so the answer is true.
            return await self.change(
                SubscriptionRequest(action="change", request_id=req.request_id, plan=wanted[0], interval=wanted[1])
            )
        return result

    async def change(self, req: SubscriptionRequest) -> SubscriptionResult:
        b = self._billing
        assert b.stripe_subscription_id and b.plan and b.interval
        plan, interval = req.plan or b.plan, req.interval or b.interval
        await self._drop_pending_change()
        if (plan, interval) == (b.plan, b.interval):  # only undoing a scheduled downgrade
            return self._describe(b)
        # annual -> monthly on the same tier: the year is paid, monthly billing starts when
        # it ends (twelve months cost more than the annual price, but nothing is upgraded)
        to_monthly = plan == b.plan and (b.interval, interval) == ("year", "month")
        if to_monthly and workflow.patched(patches.BILLING_INTERVAL_AT_PERIOD_END):
            return await self._at_period_end(req, plan, interval, INTERVAL_CHANGE_LEAD)
        if await self._is_upgrade(req, plan, interval):
            result: SubscriptionResult = await self._stripe(
                StripeActivities.change_plan,
                ChangePlanInput(
                    customer_id=self._state.customer_id,
                    stripe_subscription_id=b.stripe_subscription_id,
                    plan=plan,
                    interval=interval,
                    idempotency_key=self._key(req, "upgrade"),
                    proration_behavior="always_invoice",
                ),
            )
            await self._apply_result(result, cause=f"subscription:{req.request_id}")
            return result
        # A downgrade: the customer keeps what they paid for until the period ends.
        return await self._at_period_end(req, plan, interval)

    async def _at_period_end(
        self, req: SubscriptionRequest, plan: str, interval: str, lead: timedelta = timedelta(0)
    ) -> SubscriptionResult:
        """Schedule the move to ``plan`` / ``interval`` for the end of the paid period, less
        ``lead`` (a ``customer-{id}/plan-change/{request}`` child)."""
        b = self._billing
        assert b.stripe_subscription_id
        child_id = campaign_workflow_id(self._state.customer_id, "plan-change", req.request_id)
        apply_at = b.current_period_end - lead if b.current_period_end else workflow.now()
        await workflow.start_child_workflow(
            PlanChangeWorkflow.run,
            PlanChangeInput(
                customer_id=self._state.customer_id,
                stripe_subscription_id=b.stripe_subscription_id,
                plan=plan,
                interval=interval,
                apply_at=apply_at,
                request_id=req.request_id,
            ),
            id=child_id,
            parent_close_policy=ParentClosePolicy.ABANDON,
        )
        b.pending_plan, b.pending_interval, b.pending_change_workflow = plan, interval, child_id
        result = self._describe(b)
        result.outcome = OUTCOME_CHANGE_SCHEDULED
        return result

    async def _is_upgrade(self, req: SubscriptionRequest, plan: str, interval: str) -> bool:
        """The request costs more per year than the subscription now (applied at once);
        else a downgrade, at the period end. A period other than one month or year is
        reckoned by the year; a current plan the snapshot lacks has no price to compare:
        recorded, and the change waits for the period end (nothing is charged now)."""
        b, tiers = self._billing, terms(self._tiers)
        odd_period = b.interval not in ("month", "year") or b.interval_count != 1
        if odd_period and not workflow.patched(patches.PRICE_PERIODS):
            raise ValueError(f"unknown billing interval {b.interval!r}; expected 'month' or 'year'")
        current = tiers.find(b.plan)
        if current is None:
            await data_error(
                self._state.customer_id, tiers.unknown(b.plan), key=self._key(req, "compare"), campaign=None,
                unknown="plan", value=b.plan, skipped="the upgrade-or-downgrade comparison (applied at the period end)",
            )
            return False
        return tiers.annual_cents(plan, interval) > current.annual_cents(b.interval)

    async def _drop_pending_change(self) -> None:
        b = self._billing
        if b.pending_change_workflow:
            try:
                await workflow.get_external_workflow_handle(b.pending_change_workflow).cancel()
            except FailureError as err:
                workflow.logger.info("pending plan change %s not canceled (%s)", b.pending_change_workflow, err)
        b.clear_pending_change()

    async def _cancel(self, req: SubscriptionRequest) -> SubscriptionResult:
        b = self._billing
        assert b.stripe_subscription_id
        await self._drop_pending_change()
        result: SubscriptionResult = await self._stripe(
            StripeActivities.cancel_subscription,
            CancelInput(
                customer_id=self._state.customer_id,
                stripe_subscription_id=b.stripe_subscription_id,
                idempotency_key=self._key(req, "cancel"),
                at_period_end=not req.at_once,
            ),
        )
        await self._apply_result(result, cause=f"subscription:{req.request_id}")
        return result

    def _describe(self, b: BillingState) -> SubscriptionResult:
        return SubscriptionResult(
            outcome=OUTCOME_ACTIVE if b.live else (b.status or "none"),
            stripe_subscription_id=b.stripe_subscription_id,
            status=b.status,
            plan=b.plan,
            interval=b.interval,
            current_period_end=b.current_period_end,
            cancel_at_period_end=b.cancel_at_period_end,
            pending_plan=b.pending_plan,
            pending_interval=b.pending_interval,
        )

    # --- keeping state and stage in step with Stripe ---------------------------------------

    async def _apply_result(self, result: SubscriptionResult, *, cause: str) -> None:
        b = self._billing
        if result.stripe_subscription_id:
            b.stripe_subscription_id = result.stripe_subscription_id
        b.status = result.status or b.status
        b.plan = result.plan or b.plan
        if result.interval:  # a price of the engine's own: every one interval
            b.interval, b.interval_count = result.interval, 1
        b.cancel_at_period_end = result.cancel_at_period_end
        b.current_period_end = result.current_period_end or b.current_period_end
        result.pending_plan, result.pending_interval = b.pending_plan, b.pending_interval
        await self.follow_status(cause)

    async def follow_status(self, cause: str) -> None:
        """Move the stage to match the subscription's status, and the plan to match its plan."""
        b = self._billing
        if b.plan and b.plan != self._state.plan and b.live:
            previous_plan = self._state.plan
            self._state.plan = b.plan
            workflow.upsert_search_attributes([PLAN.value_set(b.plan)])
            if workflow.patched(patches.WEBHOOKS_PUBLISH):
                await publish(
                    self._state.customer_id, ENTITLEMENTS_CHANGED,
                    {"reason": "plan_change", "from_plan": previous_plan, "plan": b.plan},
                    key=f"entitlements:{previous_plan}->{b.plan}:{cause}",
                )
        facts = subscription_facts(b)
        if facts != b.published and workflow.patched(patches.WEBHOOKS_PUBLISH):
            b.published = facts
            await publish(self._state.customer_id, SUBSCRIPTION_CHANGED, facts, key=f"subscription:{cause}")
        stage = self._state.stage
        target = stage_for_status(b.status, stage) if b.status else stage
        if target != stage or self._state.stage_changed_at is None:
            await self._set_stage(target, cause=cause)  # also updates the search attributes
        if (
            b.live
            and not b.trial_told
            and "trial" in self._state.campaigns
            and workflow.patched(patches.BILLING_TELL_TRIAL_SUBSCRIBED)
        ):
            # subscribed while the trial campaign runs: no more "add a card" reminders
            b.trial_told = True
            await self._tell_campaign("trial", TrialWorkflow.subscribed)

    async def on_stripe_subscription(self, event: CustomerEvent) -> None:
        await self.until_begun()
        async with self.lock:
            d = payload_of(event, StripeSubscription)
            b = self._billing
            sub_id = d.stripe_subscription_id
            if d.adopted and not b.imported and d.stripe_customer_id:
                b.imported = True
                try:
                    await self._stripe(
                        StripeActivities.import_customer,
                        ImportCustomerInput(self._state.customer_id, d.stripe_customer_id),
                    )
                except ApplicationError as err:
                    workflow.logger.warning("customer details not imported from Stripe: %s", err)
            if b.live and sub_id != b.stripe_subscription_id and d.status in ENDED_STATUSES:
                return  # an older subscription ended; the current one is unaffected
            b.stripe_subscription_id = sub_id
            b.status = d.status
            b.plan = d.plan or b.plan
            if d.interval:
                b.interval, b.interval_count = d.interval, d.interval_count or 1
            b.cancel_at_period_end = d.cancel_at_period_end
            if d.current_period_end:
                b.current_period_end = d.current_period_end
            if not b.live and b.pending_change_workflow and workflow.patched(patches.BILLING_ENDED_DROPS_PENDING_CHANGE):
                await self._drop_pending_change()  # nothing left to downgrade
            await self.follow_status(event.event_id)

    async def on_invoice_paid(self, event: CustomerEvent) -> None:
        await self.until_begun()
        async with self.lock:
            b = self._billing
            if self._state.stage == PAST_DUE:
                if b.status in ("past_due", "unpaid", "incomplete"):
                    b.status = "active"
                await self._set_stage(ACTIVE, cause=event.event_id)

    async def on_invoice_payment_failed(self, event: CustomerEvent) -> None:
        await self.until_begun()
        async with self.lock:
            if self._state.stage in PAID_STAGES:
                await self._set_stage(PAST_DUE, cause=event.event_id)

    async def on_billing_notice(self, event: CustomerEvent) -> None:
        workflow.logger.info("billing notice %s (%s)", event.kind, event.event_id)

    async def on_plan_change_dropped(self, event: CustomerEvent) -> None:
        """A downgrade child found its subscription ended: the change is no longer pending."""
        await self.until_begun()
        async with self.lock:
            dropped = payload_of(event, PlanChangeDropped)
            b = self._billing
            if dropped.workflow_id == b.pending_change_workflow:
                b.clear_pending_change()
            workflow.logger.info("plan change %s dropped: %s", dropped.workflow_id, dropped.reason)

    async def on_plan_changed(self, event: CustomerEvent) -> None:
        await self.until_begun()
        async with self.lock:
            changed = payload_of(event, PlanChanged)
            b = self._billing
            if changed.workflow_id == b.pending_change_workflow:
                b.clear_pending_change()
            b.plan = changed.plan or b.plan
            b.interval = changed.interval or b.interval
            b.status = changed.status or b.status
            await self.follow_status(event.event_id)

    # --- trial conversion ------------------------------------------------------------------

    async def convert_trial(self, cause: str) -> None:
        """The trial ended with a payment method on file: subscribe for real."""
        async with self.lock:
            if self._billing.live:  # subscribed during the trial already
                await self.follow_status(cause)
                return
            keep_default = workflow.patched(patches.TRIAL_CONVERSION_KEEPS_DEFAULT)
            try:
                result: SubscriptionResult = await self._stripe(
                    StripeActivities.start_subscription,
                    StartSubscriptionInput(
                        customer_id=self._state.customer_id,
                        plan=self._state.plan,
                        interval="month",
                        idempotency_key=f"{workflow.info().workflow_id}:trial-conversion",
                        payment_method_id=self._state.payment_method_id,
                        keep_default=keep_default,
                    ),
                    CONVERSION_RETRY,
                )
            except ApplicationError as err:
                # Never fail the entity over billing: without Stripe configured the engine
                # does not bill (the customer is simply active); a refusal is a payment problem.
                if err.type == "StripeNotConfigured":
                    await self._set_stage(ACTIVE, cause=cause)
                else:
                    workflow.logger.warning("trial conversion could not subscribe: %s", err)
                    await self._set_stage(
                        PAST_DUE, cause=cause, reason=f"trial conversion refused by Stripe: {err.message}"
                    )
                return
            if result.outcome == OUTCOME_NO_PAYMENT_METHOD:
                workflow.logger.warning("trial converted but Stripe has no card: trial expires")
                await self._set_stage(EXPIRED, cause=cause)
                return
            await self._apply_result(result, cause=cause)
            if result.outcome == OUTCOME_PAYMENT_FAILED and self._state.stage == TRIALING:
                await self._set_stage(PAST_DUE, cause=cause)
