"""Table tests for the pure decisions inside workflows: which subscription requests the
``change_subscription`` validator refuses (and why), and which email a usage crossing gets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lifecycle.contracts.billing import BillingState, SubscriptionRequest
from lifecycle.contracts.campaigns import UsageNudgeInput
from lifecycle.contracts.policy import UsagePolicy
from lifecycle.contracts.stages import ACTIVE, TRIALING
from lifecycle.contracts.tiers import tiers_from_catalog
from workflows.subscription import refusal
from workflows.usage_nudge import choose_step

PLANS = tiers_from_catalog().codes
NONE = BillingState()
LIVE = BillingState(stripe_subscription_id="sub_1", status="active", plan="starter", interval="month")
CANCELING = BillingState(
    stripe_subscription_id="sub_1", status="active", plan="starter", interval="month", cancel_at_period_end=True
)
DOWNGRADE_PENDING = BillingState(
    stripe_subscription_id="sub_1", status="active", plan="business", interval="month",
    pending_plan="starter", pending_interval="month", pending_change_workflow="customer-c/plan-change/r",
)
ENDED = BillingState(stripe_subscription_id="sub_1", status="canceled", plan="starter", interval="month")
PAST_DUE = BillingState(stripe_subscription_id="sub_1", status="past_due", plan="starter", interval="month")


def req(action: str, plan: str | None = None, interval: str | None = None, at_once: bool = False) -> SubscriptionRequest:
    return SubscriptionRequest(action=action, request_id="r", plan=plan, interval=interval, at_once=at_once)


@pytest.mark.parametrize(
    ("state", "request_", "reason"),
    [
        # any state: the request itself is malformed
        (NONE, req("upgrade", "business"), "action: expected create, change or cancel, got 'upgrade'"),
        (LIVE, req("change", "gold"),
         "plan: unknown plan 'gold'; expected one of starter, professional, business, enterprise"),
        (NONE, req("create", "starter", "week"), "interval: expected one of month, year, got 'week'"),
        # create
        (NONE, req("create"), "plan: required to subscribe"),
        (NONE, req("create", "starter"), None),
        (ENDED, req("create", "business", "year"), None),
        (LIVE, req("create", "business"),
         "already subscribed to starter (monthly, active); use PATCH to change the plan"),
        (PAST_DUE, req("create", "business"),
         "already subscribed to starter (monthly, past_due); use PATCH to change the plan"),
        (CANCELING, req("create", "starter"), None),  # reactivates
        # change
        (NONE, req("change", "business"), "no active subscription to change; subscribe first (POST)"),
        (ENDED, req("change", "business"), "no active subscription to change; subscribe first (POST)"),
        (LIVE, req("change"), "plan or interval: give at least one to change"),
        (LIVE, req("change", "starter"), "already on starter (monthly)"),
        (LIVE, req("change", interval="month"), "already on starter (monthly)"),
        (LIVE, req("change", "business"), None),
        (LIVE, req("change", interval="year"), None),
        (DOWNGRADE_PENDING, req("change", "business"), None),  # undoes the pending downgrade
        # cancel
        (NONE, req("cancel"), "no active subscription to cancel"),
        (ENDED, req("cancel"), "no active subscription to cancel"),
        (LIVE, req("cancel"), None),
        (CANCELING, req("cancel"), "already set to cancel at the end of the period"),
        (CANCELING, req("cancel", at_once=True), None),
    ],
)
def test_which_subscription_requests_are_refused_and_why(
    state: BillingState, request_: SubscriptionRequest, reason: str | None
) -> None:
    assert refusal(request_, state, PLANS) == reason


def test_the_plans_a_request_may_name_are_the_workflows_tiers() -> None:
    assert refusal(req("create", "starter"), NONE, ["professional"]) == (
        "plan: unknown plan 'starter'; expected one of professional"
    )


def crossing(threshold: int, limit_kind: str, stage: str) -> UsageNudgeInput:
    return UsageNudgeInput(
        customer_id="c", metric="ai_requests", threshold=threshold, used=800, limit=1000,
        limit_kind=limit_kind, period_start=datetime(2026, 11, 1, tzinfo=UTC), plan="starter",
        stage=stage, policy=UsagePolicy(),
    )


@pytest.mark.parametrize(
    ("threshold", "limit_kind", "stage", "step", "template", "category"),
    [
        (80, "hard", ACTIVE, "nudge_80", "usage_nudge", "marketing"),
        (80, "soft", ACTIVE, "nudge_80", "usage_nudge", "marketing"),
        (80, "hard", TRIALING, "nudge_80", "usage_nudge_trial", "marketing"),
        (100, "hard", ACTIVE, "limit_reached", "usage_limit_reached", "transactional"),
        (100, "hard", TRIALING, "limit_reached", "usage_limit_reached_trial", "transactional"),
        (100, "soft", ACTIVE, "overage", "usage_overage", "transactional"),
        (100, "soft", TRIALING, "overage", "usage_overage_trial", "transactional"),
        (120, "soft", ACTIVE, "overage", "usage_overage", "transactional"),
    ],
)
def test_which_email_a_usage_crossing_gets(
    threshold: int, limit_kind: str, stage: str, step: str, template: str, category: str
) -> None:
    chosen = choose_step(crossing(threshold, limit_kind, stage))
    assert (chosen.name, chosen.template, chosen.category) == (step, template, category)
