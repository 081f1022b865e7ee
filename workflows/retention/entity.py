"""The customer's retention, as CustomerWorkflow handles it: a plain object the workflow
owns (like :class:`~workflows.subscription.Subscription`, whose lock and Stripe calls it
shares).

- **Cancellation save.** A cancellation request with a reason may be answered with one
  offer by reason (the policy's ``[save_offers]``): a pause, a downgrade or a coupon. The
  offer's window is a timer of the entity; accept and decline are validated updates, so
  an answer to an unknown, another customer's, expired or used offer is refused with the
  reason and nothing reaches Stripe. Declined or not answered in time, the cancellation
  goes ahead as asked. At most one offer per ``once_per_days``.
- **Win-back.** When the subscription ends (stage ``canceled``) or the trial expires
  (``expired``) the ``customer-{id}/winback/{n}`` child starts; the reactivation page's
  ``reactivate`` update subscribes again with the campaign's coupon and the customer is
  ``won_back``; a campaign that ends ``lost`` moves the stage to ``lost``.

Timers (an offer's window, a pause's end) run as workflow tasks that, when due, queue an
event for the main loop (handled one at a time like every other event); a new run
(continue-as-new) starts them again from the state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.stripe import StripeActivities
    from activities.winback import WinbackActivities
    from lifecycle.contracts.billing import (
        OUTCOME_ACTIVE,
        OUTCOME_CANCELED,
        OUTCOME_SAVE_OFFERED,
        CancelInput,
        CouponInput,
        CouponResult,
        ReactivateInput,
        StartSubscriptionInput,
        SubscriptionRequest,
        SubscriptionResult,
    )
    from lifecycle.contracts.catalog import known_period, per_month_cents
    from lifecycle.contracts.coupons import offer_words, price_words
    from lifecycle.contracts.customer import CustomerEvent, CustomerState
    from lifecycle.contracts.events import PauseEnded, SaveOfferExpired, customer_event, payload_of
    from lifecycle.contracts.policy import CampaignPolicy
    from lifecycle.contracts.stages import CANCELED, EXPIRED, LOST
    from lifecycle.contracts.tiers import Tier
    from lifecycle.contracts.webhooks import ENTITLEMENTS_CHANGED
    from lifecycle.contracts.winback import (
        CANCEL_REASONS,
        CHURNED,
        MONTH_DAYS,
        OFFER_ACCEPTED,
        OFFER_COUPON,
        OFFER_DECLINED,
        OFFER_DOWNGRADE,
        OFFER_EXPIRED,
        OFFER_OPEN,
        OFFER_PAUSE,
        OFFER_WITHDRAWN,
        TRIAL,
        WINBACK_LOST,
        AccessPauseRecord,
        CancellationRecord,
        OfferAnswer,
        PauseInput,
        ReactivateRequest,
        ReactivationRecord,
        SaveOffer,
        SaveOfferRecord,
        WinbackInput,
    )
    from workflows import patches
    from workflows.notify import publish
    from workflows.options import STORE_RETRY, STORE_TIMEOUT
    from workflows.retention.winback import WinbackWorkflow
    from workflows.subscription import Subscription, terms
    from workflows.timeline import data_error, record_event

CAMPAIGN = "winback"
ENDED_STAGES = (CANCELED, EXPIRED, LOST)

# ApplicationError types of the refusals (the API answers 404 / 409 by them)
NO_SUCH_OFFER = "NoSuchOffer"
OFFER_CLOSED = "OfferClosed"
ALREADY_ACTIVE = "AlreadyActive"
NOTHING_TO_REACTIVATE = "NothingToReactivate"


def cheaper_tier(tiers: list[Tier], code: str) -> Tier | None:
    """The next tier down from ``code`` (None: it is the cheapest)."""
    current = next((t for t in tiers if t.code == code), None)
    if current is None:
        return None
    lower = [t for t in tiers if t.rank < current.rank]
    return max(lower, key=lambda t: t.rank) if lower else None


class RetentionSide:
    """Save offers and win-back for one customer (state in ``state.winback``)."""

    def __init__(
        self,
        state: CustomerState,
        policy: CampaignPolicy,
        subscription: Subscription,
        *,
        set_stage: Callable[..., Awaitable[None]],
        start_campaign: Callable[..., Awaitable[None]],
        tell_campaign: Callable[..., Awaitable[None]],
        enqueue: Callable[[CustomerEvent], None],
    ) -> None:
        self._state = state
        self._policy = policy
        self._sub = subscription
        self._set_stage = set_stage
        self._start_campaign = start_campaign
        self._tell_campaign = tell_campaign
        self._enqueue = enqueue
        self._tasks: list[asyncio.Task[None]] = []  # the timers (kept referenced)

    @property
    def _r(self) -> Any:
        return self._state.winback

    def _days(self, n: float) -> timedelta:
        return self._policy.days(n)

    def _key(self, *parts: str) -> str:
        return ":".join([workflow.info().workflow_id, "retention", *parts])

    # --- records -------------------------------------------------------------------------

    async def _record(self, activity: Any, rec: Any) -> None:
        await workflow.execute_activity_method(
            activity, rec, start_to_close_timeout=STORE_TIMEOUT, retry_policy=STORE_RETRY
        )

    async def _record_cancellation(self, req: SubscriptionRequest, outcome: str, offer_id: str | None) -> None:
        await self._record(
            WinbackActivities.record_cancellation,
            CancellationRecord(
                customer_id=self._state.customer_id,
                request_id=req.request_id,
                reason=req.detail.get("reason"),
                outcome=outcome,
                at=workflow.now(),
                offer_id=offer_id,
            ),
        )

    async def _record_offer(self, offer: SaveOffer, event: str) -> None:
        await self._record(
            WinbackActivities.record_save_offer,
            SaveOfferRecord(customer_id=self._state.customer_id, offer=offer, event=event),
        )

    # --- cancellation save -----------------------------------------------------------------

    def _offer_for(self, req: SubscriptionRequest) -> SaveOffer | None:
        """The offer the policy makes for this request (None: the cancellation goes ahead)."""
        policy = self._policy.save_offers
        rule = policy.offers.get(str(req.detail.get("reason")))
        b, r, now = self._state.billing, self._r, workflow.now()
        if rule is None or not b.live or b.cancel_at_period_end or self._state.stage in ENDED_STAGES:
            return None
        if r.last_offer_at is not None and now - r.last_offer_at < self._days(policy.once_per_days):
            return None  # one offer per customer per period
        plan = None
        if rule.kind == OFFER_DOWNGRADE:
            lower = cheaper_tier(terms(self._sub._tiers).tiers, b.plan or self._state.plan)
            if lower is None:
                return None  # already on the cheapest tier
            plan = lower.code
        return SaveOffer(
            offer_id=f"offer_{workflow.uuid4().hex[:16]}",
            request_id=req.request_id,
            reason=str(req.detail["reason"]),
            kind=rule.kind,
            made_at=now,
            expires_at=now + self._days(policy.window_days),
            months=rule.months if rule.kind != OFFER_DOWNGRADE else 0,
            percent_off=rule.percent_off if rule.kind == OFFER_COUPON else 0.0,
            plan=plan,
            at_once=req.at_once,
        )

    async def cancel(self, req: SubscriptionRequest) -> SubscriptionResult:
        """A cancellation with a reason: answered with an offer, or carried out."""
        async with self._sub.lock:
            why = self._sub.refusal(req)
            if why is not None:
                raise ApplicationError(why, type="SubscriptionConflict", non_retryable=True)
            open_offer = self._r.offer
            if open_offer is not None and open_offer.is_open:  # asked again: the same offer
                return self._offered(open_offer)
            offer = self._offer_for(req)
            if offer is None:
                result = await self._sub._cancel(req)
                outcome = "canceled" if result.outcome == OUTCOME_CANCELED else "cancel_scheduled"
                await self._record_cancellation(req, outcome, None)
                return result
            if workflow.patched(patches.RETENTION_OFFER_HOLDS_CANCEL):
                await self._hold_cancel(offer)
            self._r.offer, self._r.last_offer_at = offer, offer.made_at
            await self._record_offer(offer, "made")
            await self._record_cancellation(req, "offered", offer.offer_id)
            self._watch_window(offer)
            return self._offered(offer)

    async def _hold_cancel(self, offer: SaveOffer) -> None:
        """Tell Stripe at once that the customer asked to leave (``cancel_at_period_end``):
        should the period end inside the offer's window, Stripe ends the subscription
        instead of charging another period. Accepting the offer undoes it (:meth:`_release`);
        declined or expired, the cancellation finds it done. Under the lock."""
        b = self._state.billing
        assert b.stripe_subscription_id
        result: SubscriptionResult = await self._sub._stripe(
            StripeActivities.cancel_subscription,
            CancelInput(self._state.customer_id, b.stripe_subscription_id, self._key("hold", offer.offer_id)),
        )
        offer.holds_cancel = True
        await self._sub._apply_result(result, cause=f"save-offer:{offer.offer_id}")

    async def _release(self, offer: SaveOffer, request_id: str) -> None:
        """The offer was accepted: the customer stays, Stripe no longer cancels at the period end."""
        b = self._state.billing
        result: SubscriptionResult = await self._sub._stripe(
            StripeActivities.reactivate_subscription,
            ReactivateInput(self._state.customer_id, self._key("release", offer.offer_id),
                            stripe_subscription_id=b.stripe_subscription_id, undo_only=True),
        )
        await self._sub._apply_result(result, cause=f"save-offer:{offer.offer_id}:{request_id}")

    async def withdraw_open_offer(self) -> None:
        """A cancellation without a reason while an offer is open: the customer has chosen
        (the cancellation went ahead as asked), so the offer closes as ``withdrawn`` and
        can no longer be accepted, nor go ahead a second time when its window ends."""
        async with self._sub.lock:
            offer = self._r.offer
            if offer is None or not offer.is_open:
                return
            offer.status, offer.decided_at = OFFER_WITHDRAWN, workflow.now()
            await self._record_offer(offer, "withdrawn")

    def _offered(self, offer: SaveOffer) -> SubscriptionResult:
        result = self._sub._describe(self._state.billing)
        result.outcome, result.save_offer = OUTCOME_SAVE_OFFERED, offer
        result.reason = f"{offer.kind} offered for {offer.reason}; the cancellation waits for the answer"
        if offer.holds_cancel:
            result.reason += " (Stripe is set to cancel at the period end meanwhile: no renewal is charged)"
        return result

    def answer_refusal(self, ans: OfferAnswer) -> tuple[str, str] | None:
        """(why, type) when ``ans`` names no open offer of this customer; None: it does."""
        offer = self._r.offer
        if offer is None or offer.offer_id != ans.offer_id:
            return f"offer: no offer {ans.offer_id!r} for this customer", NO_SUCH_OFFER
        if not offer.is_open:
            return f"offer {offer.offer_id} was already {offer.status}", OFFER_CLOSED
        if workflow.now() >= offer.expires_at:
            return f"offer {offer.offer_id} expired at {offer.expires_at:%Y-%m-%d %H:%M} UTC", OFFER_CLOSED
        if not self._state.billing.live:
            return f"offer {offer.offer_id}: the subscription has ended meanwhile", OFFER_CLOSED
        return None

    async def answer(self, ans: OfferAnswer, *, accept: bool) -> SubscriptionResult:
        async with self._sub.lock:
            refused = self.answer_refusal(ans)
            if refused is not None:
                raise ApplicationError(refused[0], type=refused[1], non_retryable=True)
            offer: SaveOffer = self._r.offer
            offer.status = OFFER_ACCEPTED if accept else OFFER_DECLINED
            offer.decided_at = workflow.now()
            if not accept:
                return await self._go_ahead(offer, "declined")
            if offer.holds_cancel:
                try:  # a subscription Stripe ended meanwhile (unheard) is not restarted
                    await self._release(offer, ans.request_id)
                except ApplicationError as err:
                    if err.type != "SubscriptionEnded":
                        raise
                    # still open: its window (whose timer the answer ended) closes it as asked
                    offer.status, offer.decided_at = OFFER_OPEN, None
                    self._watch_window(offer)
                    raise ApplicationError(f"offer {offer.offer_id}: the subscription has ended meanwhile",
                                           type=OFFER_CLOSED, non_retryable=True) from err
            result = await self._apply(offer, ans.request_id)
            await self._record_offer(offer, "accepted")
            await self._record_cancellation(self._request_of(offer), "saved", offer.offer_id)
            result.save_offer = offer
            return result

    def _request_of(self, offer: SaveOffer) -> SubscriptionRequest:
        return SubscriptionRequest(
            action="cancel", request_id=offer.request_id, at_once=offer.at_once,
            detail={"reason": offer.reason},
        )

    async def _go_ahead(self, offer: SaveOffer, event: str) -> SubscriptionResult:
        """Declined or expired: the cancellation as it was asked for (under the lock)."""
        await self._record_offer(offer, event)
        req = self._request_of(offer)
        b = self._state.billing
        if not b.live and offer.holds_cancel:  # the period ended inside the window: Stripe ended it
            await self._record_cancellation(req, "canceled", offer.offer_id)
            return self._sub._describe(b)
        if not b.live or (b.cancel_at_period_end and not req.at_once and not offer.holds_cancel):
            return self._sub._describe(b)  # it ended (or was set to) meanwhile
        result = await self._sub._cancel(req)
        outcome = "canceled" if result.outcome == OUTCOME_CANCELED else "cancel_scheduled"
        await self._record_cancellation(req, outcome, offer.offer_id)
        return result

    async def _apply(self, offer: SaveOffer, request_id: str) -> SubscriptionResult:
        b = self._state.billing
        assert b.stripe_subscription_id
        cid = self._state.customer_id
        if offer.kind == OFFER_PAUSE:
            resumes_at = workflow.now() + self._days(offer.months * MONTH_DAYS)
            result: SubscriptionResult = await self._sub._stripe(
                StripeActivities.pause_collection,
                PauseInput(cid, b.stripe_subscription_id, self._key("pause", offer.offer_id), resumes_at),
            )
            self._r.paused_until = resumes_at
            if workflow.patched(patches.RETENTION_PAUSE_ACCESS):
                await self._pause_access(offer.offer_id, resumes_at)
            self._watch_pause(offer.offer_id, resumes_at)
            return result
        if offer.kind == OFFER_DOWNGRADE:
            assert offer.plan
            return await self._sub.change(
                SubscriptionRequest(
                    action="change", request_id=f"save-{offer.offer_id}", plan=offer.plan, interval=b.interval
                )
            )
        coupon_input = CouponInput(
            customer_id=cid,
            idempotency_key=self._key("coupon", offer.offer_id),
            percent_off=offer.percent_off,
            duration="repeating",
            duration_in_months=offer.months,
            apply_to_subscription=b.stripe_subscription_id,
        )
        if workflow.patched(patches.RETENTION_COUPON_BY_INTERVAL):  # the terms for the subscription's interval
            coupon_input.offer_months, coupon_input.plan, coupon_input.interval = offer.months, b.plan, b.interval
        coupon: CouponResult = await self._sub._stripe(StripeActivities.create_coupon, coupon_input)
        result = self._sub._describe(b)
        result.reason = f"coupon {coupon.coupon_id} applied"
        return result

    async def _pause_access(self, offer_id: str, resumes_at: datetime, *, ended: bool = False) -> None:
        """What the pause leaves of access (the policy's ``pause_access``), recorded for the
        usage check and the entitlements and told to the product; ``ended``: restored."""
        access = self._r.paused_access if ended else self._policy.save_offers.pause_access
        assert access is not None
        self._r.paused_access = None if ended else access
        await self._record(
            WinbackActivities.record_access_pause,
            AccessPauseRecord(self._state.customer_id, offer_id, access, workflow.now(), resumes_at, ended=ended),
        )
        data: dict[str, Any] = (
            {"reason": "pause_ended", "paused": False}
            if ended
            else {"reason": "paused", "paused": True, "access": access, "until": resumes_at.isoformat()}
        )
        await publish(self._state.customer_id, ENTITLEMENTS_CHANGED, data,
                      key=f"pause-entitlements:{offer_id}:{'ended' if ended else 'began'}")

    def _watch_window(self, offer: SaveOffer) -> None:
        async def window() -> None:
            try:
                await workflow.wait_condition(
                    lambda: not offer.is_open, timeout=max(offer.expires_at - workflow.now(), timedelta(0))
                )
            except TimeoutError:
                self._enqueue(customer_event(self._key("expired", offer.offer_id), SaveOfferExpired(offer.offer_id)))

        self._tasks.append(asyncio.create_task(window()))

    def _watch_pause(self, offer_id: str, until: datetime) -> None:
        async def pause() -> None:
            delay = until - workflow.now()
            if delay > timedelta(0):
                await workflow.sleep(delay)
            self._enqueue(customer_event(self._key("resume", offer_id), PauseEnded(offer_id)))

        self._tasks.append(asyncio.create_task(pause()))

    def resume_timers(self) -> None:
        """A new run (continue-as-new): the timers of an open offer and a running pause again."""
        offer = self._r.offer
        if offer is not None and offer.is_open:
            self._watch_window(offer)
        if self._r.paused_until is not None and offer is not None:
            self._watch_pause(offer.offer_id, self._r.paused_until)

    async def on_offer_expired(self, event: CustomerEvent) -> None:
        offer_id = payload_of(event, SaveOfferExpired).offer_id
        async with self._sub.lock:
            offer = self._r.offer
            if offer is None or offer.offer_id != offer_id or not offer.is_open:
                return  # answered meanwhile
            offer.status, offer.decided_at = OFFER_EXPIRED, workflow.now()
            await self._go_ahead(offer, "expired")

    async def on_pause_ended(self, event: CustomerEvent) -> None:
        offer_id = payload_of(event, PauseEnded).offer_id
        async with self._sub.lock:
            b = self._state.billing
            if self._r.paused_until is None:
                return
            until = self._r.paused_until
            self._r.paused_until = None
            if self._r.paused_access is not None:  # the pause limited access: restored
                await self._pause_access(offer_id, until, ended=True)
            detail: dict[str, Any] = {"offer_id": offer_id}
            if b.live and b.stripe_subscription_id:
                try:
                    await self._sub._stripe(
                        StripeActivities.pause_collection,
                        PauseInput(self._state.customer_id, b.stripe_subscription_id, self._key("resume", offer_id)),
                    )
                except ApplicationError as err:  # e.g. it ended meanwhile: nothing to resume
                    detail["note"] = err.message
            await record_event(self._state.customer_id, key=self._key("resumed", offer_id),
                               kind="subscription_resumed", campaign="retention", detail=detail)

    # --- win-back --------------------------------------------------------------------------

    async def start_winback(self, stage: str) -> None:
        """The subscription ended or the trial expired: the win-back campaign, if the policy has one."""
        policy = self._policy.winback
        variant = TRIAL if stage == EXPIRED else CHURNED
        steps = policy.trial_steps if variant == TRIAL else policy.steps
        if not steps or CAMPAIGN in self._state.campaigns:
            return
        r = self._r
        r.winbacks += 1
        r.winback_variant, r.winback_percent_off, r.winback_months = variant, policy.percent_off, policy.duration_months
        plan = self._state.billing.plan or self._state.plan
        winback = WinbackInput(
            customer_id=self._state.customer_id,
            n=r.winbacks,
            variant=variant,
            plan=plan,
            steps=list(steps),
            percent_off=policy.percent_off,
            duration_months=policy.duration_months,
            lost_after_days=policy.lost_after_days,
            day_seconds=self._policy.day_seconds,
        )
        tiers = terms(self._sub._tiers)
        if workflow.patched(patches.RETENTION_COUPON_BY_INTERVAL) and plan in tiers.codes:
            # what the emails say: the price of the interval the customer had, the offer's
            # words true to the coupon reactivating will create (lifecycle/contracts/coupons.py)
            interval = self._state.billing.interval or "month"
            tier = tiers.get(plan)
            cents = tier.annual_price_cents if interval == "year" else tier.monthly_price_cents
            winback.interval, winback.price = interval, price_words(cents, interval)
            winback.offer = offer_words(policy.percent_off, policy.duration_months, interval, cents)
        await self._start_campaign(CAMPAIGN, WinbackWorkflow.run, winback, str(r.winbacks))

    async def winback_finished(self, outcome: str, cause: str) -> None:
        if outcome == WINBACK_LOST and self._state.stage in (CANCELED, EXPIRED):
            await self._set_stage(LOST, cause=cause)

    async def unsubscribed(self) -> None:
        await self._tell_campaign(CAMPAIGN, WinbackWorkflow.unsubscribed)

    def reactivate_refusal(self, req: ReactivateRequest) -> tuple[str, str] | None:
        b = self._state.billing
        if b.live:
            return f"already active: the {b.plan} subscription is {b.status}", ALREADY_ACTIVE
        if self._state.stage not in ENDED_STAGES:
            return f"nothing to reactivate: the customer is {self._state.stage}", NOTHING_TO_REACTIVATE
        return None

    async def reactivate(self, req: ReactivateRequest) -> SubscriptionResult:
        """Subscribe again on the last plan, with the win-back campaign's coupon."""
        async with self._sub.lock:
            refused = self.reactivate_refusal(req)
            if refused is not None:
                raise ApplicationError(refused[0], type=refused[1], non_retryable=True)
            b, r, cid = self._state.billing, self._r, self._state.customer_id
            plan, interval = b.plan or self._state.plan, b.interval or "month"
            coupon_id = None
            with_offer = bool(req.winback) and req.winback == r.winbacks and r.winback_percent_off > 0
            if with_offer:
                coupon_input = CouponInput(
                    customer_id=cid,
                    idempotency_key=self._key("winback", str(r.winbacks), "coupon"),
                    percent_off=r.winback_percent_off,
                    duration="repeating" if r.winback_months else "once",
                    duration_in_months=r.winback_months or None,
                )
                if workflow.patched(patches.RETENTION_COUPON_BY_INTERVAL):  # the terms for the plan's interval
                    coupon_input.offer_months, coupon_input.plan, coupon_input.interval = r.winback_months, plan, interval
                coupon: CouponResult = await self._sub._stripe(StripeActivities.create_coupon, coupon_input)
                coupon_id = coupon.coupon_id
            result: SubscriptionResult = await self._sub._stripe(
                StripeActivities.start_subscription,
                StartSubscriptionInput(
                    customer_id=cid,
                    plan=plan,
                    interval=interval,
                    idempotency_key=self._key("reactivate", req.request_id),
                    coupon=coupon_id,
                ),
            )
            if result.outcome != OUTCOME_ACTIVE:
                if result.stripe_subscription_id:  # a payment that failed: the state follows it
                    await self._sub._apply_result(result, cause=f"reactivate:{req.request_id}")
                return result
            from_stage = self._state.stage
            await self._sub._apply_result(result, cause=f"reactivate:{req.request_id}")
            r.reactivated_at = workflow.now()
            tiers = terms(self._sub._tiers)
            tier = tiers.find(plan)
            if tier is not None:
                mrr = per_month_cents(tier.annual_cents(interval), "year")  # any period, by the year
            else:  # a plan the snapshot lacks: the amount Stripe bills, per month
                await data_error(cid, tiers.unknown(plan), key=self._key("reactivate", req.request_id),
                                 campaign=CAMPAIGN, unknown="plan", value=plan, skipped="the tier's price for MRR")
                mrr = per_month_cents(result.amount_cents, interval) if known_period(interval) else 0
            await self._record(
                WinbackActivities.record_reactivation,
                ReactivationRecord(
                    customer_id=cid,
                    key=self._key("reactivate", req.request_id),
                    at=r.reactivated_at,
                    plan=plan,
                    interval=interval,
                    mrr_cents=mrr,
                    from_stage=from_stage,
                    winback=r.winbacks if with_offer else 0,
                    coupon_id=coupon_id,
                    percent_off=r.winback_percent_off if with_offer else 0.0,
                    duration_months=r.winback_months if with_offer else 0,
                    stripe_subscription_id=result.stripe_subscription_id,
                ),
            )
            await self._tell_campaign(CAMPAIGN, WinbackWorkflow.reactivated)
            return result


__all__ = ["CANCEL_REASONS", "RetentionSide", "cheaper_tier"]
