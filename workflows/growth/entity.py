"""Growth (renewal reminders, the expansion offer, the team promotion), as CustomerWorkflow decides it: a plain object the workflow owns (like its
:class:`~workflows.subscription.Subscription`).

After every event the entity handled (and after every subscription request) it asks
:meth:`Growth.after_event` / :meth:`Growth.sync_renewal`, which decide from the
entity's own durable state, with no activity to read anything:

- **renewal**: an annual, live subscription that is not set to cancel gets a
  :class:`~workflows.growth.renewal.RenewalWorkflow` for its current period end. When the
  period end moves, the running one is told to ``drop`` and a new one starts for the new
  date; a cancellation or a plan change (applied, or a downgrade scheduled) drops it, and
  once it has closed the same date's reminders start again on the new terms if the
  subscription is still annual and no longer set to cancel.
- **expansion offer**: every ``usage_threshold`` event (80 % or 100 %) marks its billing
  period as high; when the policy's number of back-to-back high periods is reached, an
  :class:`~workflows.growth.offer.OfferWorkflow` offers the next tier (its price and what it
  adds), or for a monthly customer on the top tier the annual interval at ten months'
  price; at most once per ``expansion_every_days``.
- **team promotion**: the ``seats`` metric reported at or above ``min_seats`` (a usage
  crossing's count) or the activation fact ``invited_teammate`` reported that many times
  promotes the Business tier once, to a customer on Starter or Professional; not in a
  trial's first days, not in dunning, not to one on Business in the last 90 days, not
  while unsubscribed from marketing email. A promotion held back is recorded as skipped
  with the reason (once per reason) and asked again after every later event: the
  onboarding that ends on day 7, the invoice paid that ends dunning, another report.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import FailureError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from lifecycle.contracts.customer import CustomerEvent, CustomerState
    from lifecycle.contracts.events import (
        Activation,
        CampaignFinished,
        EventKind,
        UsageThreshold,
        payload_of,
    )
    from lifecycle.contracts.growth import (
        EXPANSION_CAMPAIGN,
        RENEWAL_CAMPAIGN,
        TEAM_PROMOTION_CAMPAIGN,
        OfferInput,
        RenewalInput,
    )
    from lifecycle.contracts.ids import campaign_workflow_id, renewal_workflow_id
    from lifecycle.contracts.money import money
    from lifecycle.contracts.ops import PAUSE_SIGNAL, RESUME_SIGNAL
    from lifecycle.contracts.policy import CampaignPolicy
    from lifecycle.contracts.search_attributes import customer_search_attributes
    from lifecycle.contracts.stages import TRIALING
    from lifecycle.contracts.tiers import Tier, Tiers, added_by
    from workflows import patches
    from workflows.growth.offer import OfferWorkflow
    from workflows.growth.renewal import RenewalWorkflow
    from workflows.subscription import as_asked, holding_for_offer, terms
    from workflows.timeline import data_error, record_event

SEATS = "seats"
# an offer is decided only for a customer who can hear it: one that would be suppressed
# would use up the once-only promotion (or the expansion offer's 90 days) for nothing
OPTED_OUT = "unsubscribed from marketing email"
METRIC_LABELS = {"ai_requests": "AI requests", "seats": "seats", "storage_gb": "storage"}


def renewal_key(workflow_id: str) -> str:
    """The entity's name for a renewal child in ``CustomerState.campaigns``: ``renewal/{YYYYMMDD}``
    (one per period, so a moved renewal's old child finishing never unlists the new one)."""
    return f"{RENEWAL_CAMPAIGN}/{workflow_id.rsplit('/', 1)[-1]}"


def tier_offer(tier: Tier, current: Tier) -> dict[str, Any]:
    return {
        "code": tier.code,
        "name": tier.name,
        "price": tier.monthly_price,
        "annual_price": money(tier.annual_price_cents),
        "adds": added_by(tier, current),
    }


class Growth:
    """Renewal reminders, the expansion offer and the team promotion for one customer."""

    def __init__(self, state: CustomerState, policy: CampaignPolicy, tiers: Tiers | None) -> None:
        self._state = state
        self._policy = policy
        self._tiers = tiers
        self._lock = asyncio.Lock()  # the main loop and the update handler both ask

    @property
    def _r(self) -> Any:
        return self._state.retention

    async def after_event(self, event: CustomerEvent) -> None:
        """The entity handled ``event``: what it means for growth."""
        async with self._lock:
            self._note_tier()
            r, team_asked = self._r, False
            if event.kind == EventKind.ACTIVATION:
                fact = payload_of(event, Activation).fact
                if fact:
                    r.fact_reports[fact] = r.fact_reports.get(fact, 0) + 1
                    if fact == self._policy.team_promotion.fact:
                        team_asked = True
                        await self._maybe_promote_team(event, f"{fact} reported {r.fact_reports[fact]} times",
                                                       r.fact_reports[fact])
            elif event.kind == EventKind.USAGE_THRESHOLD:
                crossed = payload_of(event, UsageThreshold)
                if crossed.metric == SEATS:
                    team_asked = True
                    await self._maybe_promote_team(event, f"{crossed.used:g} seats in use", int(crossed.used))
                await self._maybe_offer_expansion(event, crossed)
            elif event.kind == EventKind.CAMPAIGN_FINISHED:
                finished = payload_of(event, CampaignFinished)
                if r.renewal_workflow and finished.campaign == renewal_key(r.renewal_workflow):
                    r.renewal_workflow = None
                elif r.renewal_closing and finished.campaign == renewal_key(r.renewal_closing):
                    r.renewal_closing = None
            if not team_asked and r.team_held_why and r.team_promoted_at is None:
                # held back earlier: whatever happened since may have lifted the reason
                await self._maybe_promote_team(event, r.team_held_why, r.team_held_count)
            await self._sync_renewal()

    async def sync_renewal(self) -> None:
        """The subscription may have changed (an API request): follow it."""
        async with self._lock:
            self._note_tier()
            await self._sync_renewal()

    # --- renewal ------------------------------------------------------------------------

    async def _sync_renewal(self) -> None:
        policy = self._policy.renewal
        b, r = self._state.billing, self._r
        if holding_for_offer(self._state) and workflow.patched(patches.RETENTION_HOLD_KEEPS_RENEWAL):
            b = as_asked(self._state)  # a save offer's hold is not the customer's cancellation
        if r.renewal_workflow:
            reason, restart = None, False
            if not b.live:
                reason = "the subscription ended"
            elif b.cancel_at_period_end:
                reason, restart = "the customer canceled", True  # again if they take it back
            elif b.current_period_end != r.renewal_period_end:
                end = b.current_period_end
                reason = f"the renewal moved to {end:%Y-%m-%d}" if end else "the renewal date is no longer known"
            elif (b.plan, b.interval) != (r.renewal_plan, r.renewal_interval) or b.pending_plan:
                reason, restart = "the customer changed plan", True  # again on the new terms
            if reason:
                try:
                    await workflow.get_external_workflow_handle(r.renewal_workflow).signal(
                        RenewalWorkflow.drop, reason
                    )
                except FailureError as err:  # it finished meanwhile
                    workflow.logger.info("renewal %s not signalled (%s)", r.renewal_workflow, err)
                r.renewal_closing, r.renewal_workflow, r.renewal_restart = r.renewal_workflow, None, restart
        if r.renewal_workflow or not (
            policy.reminders
            and b.live
            and b.interval == "year"
            and b.plan
            and b.current_period_end is not None
            and not b.cancel_at_period_end
            and not b.pending_plan
            and (b.current_period_end != r.renewal_period_end or r.renewal_restart)
            # a date already past (a plan change applied, the webhook with the new period
            # not yet heard) has nothing to remind of: the next date starts the reminders
            and b.current_period_end > workflow.now()
        ):
            return
        child_id = renewal_workflow_id(self._state.customer_id, b.current_period_end)
        if child_id == r.renewal_closing:
            return  # the same date's reminders still closing: their end (an event) asks again
        r.renewal_period_end, r.renewal_restart = b.current_period_end, False
        r.renewal_plan, r.renewal_interval = b.plan, b.interval
        started = await self._start(
            RenewalWorkflow.run,
            RenewalInput(
                customer_id=self._state.customer_id,
                period_end=b.current_period_end,
                plan=b.plan,
                interval=b.interval,
                interval_count=b.interval_count,
                reminders=policy.reminders,
                stripe_subscription_id=b.stripe_subscription_id,
                day_seconds=self._policy.day_seconds,
                tiers=self._tiers,
            ),
            child_id,
            renewal_key(child_id),
            # a date's reminders may run again after the first run closed (see above)
            reuse=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
        r.renewal_workflow = child_id if started else None

    # --- expansion offer ----------------------------------------------------------------

    async def _maybe_offer_expansion(self, event: CustomerEvent, crossed: UsageThreshold) -> None:
        policy = self._policy.renewal
        if policy.expansion is None or crossed.period_start is None or crossed.threshold < 80:
            return
        if not self._r.remember_high_period(crossed.period_start, crossed.period_end):
            return  # this period counted already (its 80 % or another metric)
        if self._r.consecutive_high_periods(crossed.period_start) < policy.expansion_periods:
            return
        now = workflow.now()
        why_not = None
        last = self._r.last_expansion_offer_at
        if self._state.stage in policy.skip_stages:
            why_not = f"customer is {self._state.stage}"
        elif self._state.marketing_opt_out:
            why_not = OPTED_OUT
        elif last is not None and now - last < self._policy.days(policy.expansion_every_days):
            why_not = f"an expansion offer was made on {last:%Y-%m-%d}, within {policy.expansion_every_days:g} days"
        tiers = terms(self._tiers)
        current = tiers.find(self._state.plan)
        if current is None:
            await self._data_error(EXPANSION_CAMPAIGN, tiers.unknown(self._state.plan), self._state.plan)
            return
        interval = self._state.billing.interval or "month"
        nxt = tiers.next_up(current.code)
        if why_not is None and nxt is None and interval == "year":
            why_not = f"already on {current.name}, billed annually"
        if why_not is not None:
            await self._record_skipped(EXPANSION_CAMPAIGN, event, why_not)
            return
        metric_label = METRIC_LABELS.get(crossed.metric, crossed.metric.replace("_", " "))
        if nxt is not None:
            context: dict[str, Any] = {"offer": "next_tier", "next_plan": tier_offer(nxt, current), "annual": None}
            detail: dict[str, Any] = {"offer": "next_tier", "plan": nxt.code, "price": nxt.monthly_price}
        else:
            saving = current.monthly_price_cents * 12 - current.annual_price_cents
            context = {
                "offer": "annual",
                "next_plan": None,
                "annual": {"price": money(current.annual_price_cents), "saving": money(saving),
                           "monthly_price": current.monthly_price, "months": round(
                               current.annual_price_cents / current.monthly_price_cents)},
            }
            detail = {"offer": "annual", "plan": current.code, "price": money(current.annual_price_cents)}
        context["usage"] = {"metric_label": metric_label, "periods": policy.expansion_periods,
                            "plan_name": current.name}
        self._r.last_expansion_offer_at = now
        await self._start(
            OfferWorkflow.run,
            OfferInput(
                customer_id=self._state.customer_id,
                campaign=EXPANSION_CAMPAIGN,
                step=policy.expansion,
                context=context,
                detail={**detail, "metric": crossed.metric, "period_start": crossed.period_start.isoformat()},
                paused=self._offer_paused(),
            ),
            campaign_workflow_id(self._state.customer_id, EXPANSION_CAMPAIGN, f"{crossed.period_start:%Y%m%d}"),
            EXPANSION_CAMPAIGN,
        )

    # --- team promotion -------------------------------------------------------------------

    def _note_tier(self) -> None:
        """Remember when the customer was last on the promoted tier or above."""
        tiers = terms(self._tiers)
        try:
            on, team = tiers.get(self._state.plan), tiers.get(self._policy.team_promotion.tier)
        except KeyError:
            return
        if on.rank >= team.rank:
            self._r.on_team_tier_at = workflow.now()

    async def _maybe_promote_team(self, event: CustomerEvent, why: str, count: int) -> None:
        policy = self._policy.team_promotion
        if policy.step is None or self._r.team_promoted_at is not None or count < policy.min_seats:
            return
        state, now = self._state, workflow.now()
        if state.plan not in policy.plans:  # Business or above already: nothing to promote
            return
        why_not = None
        if state.stage in policy.skip_stages:
            why_not = f"customer is {state.stage}"
        elif state.marketing_opt_out:
            why_not = OPTED_OUT
        elif state.stage == TRIALING and state.trial_ends_at is not None and now < (
            state.trial_ends_at - self._policy.days(self._policy.trial.length_days) + self._policy.days(
                policy.trial_grace_days)
        ):
            why_not = f"in the trial's first {policy.trial_grace_days:g} days"
        elif self._r.on_team_tier_at is not None and now - self._r.on_team_tier_at < self._policy.days(
            policy.recent_days
        ):
            why_not = f"was on {policy.tier} within the last {policy.recent_days:g} days"
        r = self._r
        if why_not is not None:
            r.team_held_why, r.team_held_count = why, count
            if why_not != r.team_held_reason:  # once per reason, not on every later event
                r.team_held_reason = why_not
                await self._record_skipped(TEAM_PROMOTION_CAMPAIGN, event, why_not)
            return
        tiers = terms(self._tiers)
        team, current = tiers.find(policy.tier), tiers.find(state.plan)
        if team is None or current is None:
            code = policy.tier if team is None else state.plan
            await self._data_error(TEAM_PROMOTION_CAMPAIGN, tiers.unknown(code), code)
            return
        r.team_promoted_at = now
        r.team_held_why = r.team_held_reason = None
        await self._start(
            OfferWorkflow.run,
            OfferInput(
                customer_id=state.customer_id,
                campaign=TEAM_PROMOTION_CAMPAIGN,
                step=policy.step,
                context={"team_plan": tier_offer(team, current), "team": {"why": why, "count": count,
                                                                           "plan_name": current.name}},
                detail={"offer": "team_tier", "plan": team.code, "price": team.monthly_price, "why": why},
                paused=self._offer_paused(),
            ),
            campaign_workflow_id(state.customer_id, "team-promotion"),
            TEAM_PROMOTION_CAMPAIGN,
        )

    # --- helpers ------------------------------------------------------------------------

    async def _start(
        self,
        run_fn: Any,
        arg: object,
        child_id: str,
        key: str,
        *,
        reuse: WorkflowIDReusePolicy = WorkflowIDReusePolicy.REJECT_DUPLICATE,
    ) -> bool:
        """Start a child (ABANDON; it reports back by signal) and list it as running."""
        cid = self._state.customer_id
        try:
            await workflow.start_child_workflow(
                run_fn,
                arg,
                id=child_id,
                parent_close_policy=ParentClosePolicy.ABANDON,
                id_reuse_policy=reuse,
                search_attributes=customer_search_attributes(cid, self._state.plan, self._state.stage),
            )
        except WorkflowAlreadyStartedError:
            workflow.logger.info("%s already started", child_id)
            return False
        self._state.campaigns[key] = child_id
        if self._state.paused and workflow.patched(patches.OPS_PAUSE_RETENTION_STARTS):
            try:  # started while marketing is paused: it starts paused (workflows/ops.py)
                await workflow.get_external_workflow_handle(child_id).signal(PAUSE_SIGNAL)
            except FailureError as err:  # it ended already
                workflow.logger.info("%s not paused (%s)", child_id, err)
        elif isinstance(arg, OfferInput) and arg.paused:  # resumed while it started: the resume missed it
            try:
                await workflow.get_external_workflow_handle(child_id).signal(RESUME_SIGNAL)
            except FailureError as err:  # it ended already
                workflow.logger.info("%s not resumed (%s)", child_id, err)
        return True

    def _offer_paused(self) -> bool:
        """An offer is due at once, so one made while marketing is paused starts paused by its
        input: the pause signal sent after the start arrives after the email went out."""
        return self._state.paused and workflow.patched(patches.OPS_OFFERS_START_PAUSED)

    async def _data_error(self, campaign: str, error: str, code: str | None) -> None:
        """A tier the entity's snapshot lacks: recorded once per campaign and code, the offer
        not made; the entity goes on (asked again after later events, recorded once)."""
        await data_error(
            self._state.customer_id, error, key=f"{workflow.info().workflow_id}:{campaign}:plan:{code}",
            campaign=campaign, unknown="plan", value=code, skipped=f"{campaign} offer",
        )

    async def _record_skipped(self, campaign: str, event: CustomerEvent, reason: str) -> None:
        await record_event(
            self._state.customer_id, key=f"{workflow.info().workflow_id}:{campaign}-skipped:{event.event_id}",
            kind="offer_skipped", campaign=campaign, detail={"reason": reason},
        )
