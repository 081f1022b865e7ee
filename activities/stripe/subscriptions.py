"""Stripe subscriptions: start, change, cancel, reactivate, pause collection."""

from __future__ import annotations

from typing import Any

from temporalio import activity

from activities.stripe.customers import CustomerCalls
from activities.stripe_answers import (
    business_error,
)
from lifecycle.billing.client import (
    MD_CUSTOMER,
    MD_INTERVAL,
    MD_KEY,
    MD_PLAN,
)
from lifecycle.billing.prices import plan_of
from lifecycle.billing.shapes import (
    SubscriptionRec,
    to_plain,
)
from lifecycle.contracts.billing import (
    OUTCOME_ACTIVE,
    OUTCOME_CANCEL_SCHEDULED,
    OUTCOME_CANCELED,
    OUTCOME_NO_PAYMENT_METHOD,
    OUTCOME_UNCHANGED,
    CancelInput,
    ChangePlanInput,
    ReactivateInput,
    StartSubscriptionInput,
    SubscriptionResult,
)
from lifecycle.contracts.winback import PauseInput
from lifecycle.db import session_scope


class SubscriptionCalls(CustomerCalls):
    """Subscription writes, each idempotent under its step's key."""

    def _find_subscription_by_key(self, stripe_customer_id: str, key: str) -> str | None:
        listing = self.client.v1.subscriptions.list(
            params={"customer": stripe_customer_id, "status": "all", "limit": 100}
        )
        for obj in listing.auto_paging_iter():
            if (to_plain(obj).get("metadata") or {}).get(MD_KEY) == key:
                return obj.id
        return None

    def _start_subscription(self, input: StartSubscriptionInput) -> SubscriptionResult:
        plan_id = self._plan_id(input.plan, input.interval)
        key = input.idempotency_key
        cus = self._ensure_customer(input.customer_id, f"{key}:customer")
        sub_id = self._recorded(key) or self._find_subscription_by_key(cus.stripe_customer_id, key)
        if sub_id is None:
            if input.payment_method_id:  # the card the customer gave: attached, made the default
                self._attach(cus.stripe_customer_id, input.payment_method_id, f"{key}:payment-method",
                             make_default=not input.keep_default)
            if self._ensure_default(cus.stripe_customer_id) is None:
                return SubscriptionResult(
                    outcome=OUTCOME_NO_PAYMENT_METHOD,
                    plan=input.plan,
                    interval=input.interval,
                    reason="the customer has no payment method on file in Stripe",
                )
            params: dict[str, Any] = {
                "customer": cus.stripe_customer_id,
                "items": [{"plan": plan_id}],
                "payment_behavior": "allow_incomplete",
                "metadata": {
                    MD_CUSTOMER: input.customer_id,
                    MD_PLAN: input.plan,
                    MD_INTERVAL: input.interval,
                    MD_KEY: key,
                },
            }
            if input.coupon and not self.localstripe_compat:
                params["discounts"] = [{"coupon": input.coupon}]
            obj = self.client.v1.subscriptions.create(params=params, options=self._opts(key))  # type: ignore[arg-type]  # params built up as a dict
            sub_id = obj.id
        with session_scope(self.sessions) as session:
            self._record(session, key, "subscription", sub_id)
        return self._result(self._subscription(sub_id))

    @activity.defn(name="stripe_start_subscription")
    async def start_subscription(self, input: StartSubscriptionInput) -> SubscriptionResult:
        """Subscribe the customer (e.g. when the trial converts); charges the first invoice.

        A declined card is the outcome ``payment_failed`` (subscription incomplete, its
        invoice open), not an error.
        """
        return await self._run(self._start_subscription, input)

    def _change_plan(self, input: ChangePlanInput) -> SubscriptionResult:
        plan_id = self._plan_id(input.plan, input.interval)
        rec = self._subscription(input.stripe_subscription_id)
        if not rec.is_live:
            raise business_error(
                f"subscription {rec.id} is {rec.status}; start a new one instead", "SubscriptionEnded"
            )
        if rec.plan_id == plan_id or self._recorded(input.idempotency_key) is not None:
            return self._result(rec, OUTCOME_UNCHANGED if rec.plan_id == plan_id else None)
        params: dict[str, Any] = {
            "items": [{"id": rec.item_id, "plan": plan_id}],
            "proration_behavior": input.proration_behavior,
            "metadata": {MD_PLAN: input.plan, MD_INTERVAL: input.interval},
        }
        if self.localstripe_compat:
            del params["proration_behavior"]
        self.client.v1.subscriptions.update(
            rec.id, params=params, options=self._opts(input.idempotency_key)  # type: ignore[arg-type]  # params built up as a dict
        )
        with session_scope(self.sessions) as session:
            self._record(session, input.idempotency_key, "subscription_change", rec.id)
        return self._result(self._subscription(rec.id))

    @activity.defn(name="stripe_change_plan")
    async def change_plan(self, input: ChangePlanInput) -> SubscriptionResult:
        """Move a live subscription to another tier or interval.

        ``always_invoice`` (upgrades, now) charges the prorated difference at once;
        ``none`` switches without proration (downgrades, run at the period end).
        """
        return await self._run(self._change_plan, input)

    def _set_cancel_at_period_end(
        self, rec: SubscriptionRec, value: bool, key: str, outcome: str
    ) -> SubscriptionResult:
        self.client.v1.subscriptions.update(
            rec.id, params={"cancel_at_period_end": value}, options=self._opts(key)
        )
        return self._result(self._subscription(rec.id), outcome)

    def _cancel(self, input: CancelInput) -> SubscriptionResult:
        rec = self._subscription(input.stripe_subscription_id)
        if not rec.is_live:
            return self._result(rec, OUTCOME_UNCHANGED)
        if input.at_period_end:
            if rec.cancel_at_period_end:
                return self._result(rec, OUTCOME_CANCEL_SCHEDULED)
            return self._set_cancel_at_period_end(rec, True, input.idempotency_key, OUTCOME_CANCEL_SCHEDULED)
        self.client.v1.subscriptions.cancel(rec.id, options=self._opts(input.idempotency_key))
        return self._result(self._subscription(rec.id), OUTCOME_CANCELED)

    @activity.defn(name="stripe_cancel_subscription")
    async def cancel_subscription(self, input: CancelInput) -> SubscriptionResult:
        """Cancel now, or at the end of the paid period (the default)."""
        return await self._run(self._cancel, input)

    def _reactivate(self, input: ReactivateInput) -> SubscriptionResult:
        plan, interval = input.plan, input.interval
        if input.stripe_subscription_id:
            rec = self._subscription(input.stripe_subscription_id)
            if rec.is_live:
                if not rec.cancel_at_period_end:
                    return self._result(rec, OUTCOME_UNCHANGED)
                return self._set_cancel_at_period_end(rec, False, input.idempotency_key, OUTCOME_ACTIVE)
            if input.undo_only:
                raise business_error(f"subscription {rec.id} is {rec.status}: it has ended", "SubscriptionEnded")
            with session_scope(self.sessions) as session:
                old_plan, old_interval = plan_of(session, rec)
            plan, interval = plan or old_plan, old_interval or interval
        if not plan:
            raise business_error("plan: required to reactivate a subscription that has ended")
        return self._start_subscription(
            StartSubscriptionInput(
                customer_id=input.customer_id,
                plan=plan,
                interval=interval or "month",
                idempotency_key=input.idempotency_key,
                coupon=input.coupon,
            )
        )

    @activity.defn(name="stripe_reactivate_subscription")
    async def reactivate_subscription(self, input: ReactivateInput) -> SubscriptionResult:
        """Undo a cancellation at period end, or subscribe again after one took effect."""
        return await self._run(self._reactivate, input)

    def _pause(self, input: PauseInput) -> SubscriptionResult:
        rec = self._subscription(input.stripe_subscription_id)
        if not rec.is_live:
            raise business_error(f"subscription {rec.id} is {rec.status}; nothing to pause", "SubscriptionEnded")
        key = input.idempotency_key
        if self._recorded(key) is None:
            # resumes_at: Stripe resumes by itself then (the workflow also resumes it, a no-op
            # there); "" clears the pause. localstripe has no pause_collection at all.
            value: Any = (
                {"behavior": "void", "resumes_at": int(input.resumes_at.timestamp())}
                if input.resumes_at is not None
                else ""
            )
            if not self.localstripe_compat:
                self.client.v1.subscriptions.update(
                    rec.id, params={"pause_collection": value}, options=self._opts(key)
                )
            with session_scope(self.sessions) as session:
                self._record(session, key, "pause" if input.resumes_at else "resume", rec.id)
        return self._result(self._subscription(rec.id))

    @activity.defn(name="stripe_pause_collection")
    async def pause_collection(self, input: PauseInput) -> SubscriptionResult:
        """Pause invoicing until ``resumes_at`` (a save offer), or resume it (``resumes_at`` None)."""
        return await self._run(self._pause, input)

