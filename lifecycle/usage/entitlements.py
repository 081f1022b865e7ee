"""Entitlements: a customer's plan, features, and each metric's limit, used and remaining
in the current billing period, with the plans that would add what it lacks."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.billing.dunning import overdue_reason, suspension
from lifecycle.contracts import catalog
from lifecycle.contracts.policy_retention import PAUSE_NONE
from lifecycle.models import Subscription, UsageCounter
from lifecycle.retention.pauses import access_pause, paused_reason
from lifecycle.usage.periods import load_customers
from lifecycle.usage.results import ZERO, UsageError, number


def for_customer(
    sessions: sessionmaker[Session], customer_id: str, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Plan, features, and each metric's limit, used and remaining in the current period."""
    now = now or dt.datetime.now(dt.UTC)
    with sessions() as session:
        info = load_customers(session, [customer_id]).get(customer_id)
        if info is None:
            raise UsageError("customer_id", f"unknown customer {customer_id[:128]!r}", status=404)
        period = info.period_at(max(now, info.created_at))
        suspended = suspension(session, customer_id)
        overdue = overdue_reason(suspended) if suspended is not None else None
        pause = access_pause(session, customer_id, now)
        paused = None if pause is None else {
            "access": pause.access, "until": pause.resumes_at.isoformat(), "reason": paused_reason(pause),
        }
        used = {row.metric: row.used for row in session.execute(
            select(UsageCounter.metric, UsageCounter.used).where(
                UsageCounter.customer_id == customer_id,
                UsageCounter.period_start == period.start,
            )
        )}
    plan = info.plan
    if plan is None:
        return _without_tier(billed_price(sessions, customer_id), customer_id, info.stage, period, used)
    metrics: dict[str, Any] = {}
    for metric, unit in catalog.METRICS.items():
        lim = plan.limit(metric)
        u = used.get(metric, ZERO)
        amount = Decimal(str(lim.amount)) if lim else None
        metrics[metric] = {
            "unit": lim.unit if lim and lim.unit else unit,
            "limit": number(amount),
            "limit_kind": lim.kind if lim else None,
            "used": number(u),
            "remaining": number(max(amount - u, ZERO)) if amount is not None else None,
            "overage": number(max(u - amount, ZERO)) if amount is not None else 0,
            "percent": round(float(u / amount * 100), 2) if amount else None,
            "allowed": overdue is None and paused is None
            and not (lim is not None and lim.kind == "hard" and u >= amount),
        }
    nxt = catalog.next_plan_up(plan.code)
    upgrades = {}
    for feature, on in plan.features.items():
        if not on:
            cheapest = min((p for p in catalog.PLANS if p.features.get(feature)),
                           key=lambda p: p.rank, default=None)
            if cheapest is not None:
                upgrades[feature] = {"code": cheapest.code, "name": cheapest.name,
                                     "monthly_price_cents": cheapest.monthly_price_cents}
    return {
        "customer_id": customer_id,
        "plan": {"code": plan.code, "name": plan.name,
                 "monthly_price_cents": plan.monthly_price_cents},
        "stage": info.stage,
        # dunning suspended access: every check is refused with this reason until paid
        "suspended": {"reason": overdue, "since": suspended.since.isoformat()} if suspended else None,
        # an accepted pause (a save offer): no metered usage; on "none" no feature either
        "paused": paused,
        "features": {f: on and not (paused and paused["access"] == PAUSE_NONE) for f, on in plan.features.items()},
        "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
        "metrics": metrics,
        "next_plan": None if nxt is None else {
            "code": nxt.code, "name": nxt.name, "monthly_price_cents": nxt.monthly_price_cents,
            "adds": catalog.added_by(nxt, plan),
        },
        "feature_upgrades": upgrades,  # feature not in this plan -> the cheapest plan with it
    }


NO_TIER_NOTE = (
    "the subscription's Stripe price maps to no tier: usage is counted but not limited and "
    "no feature is withheld until the price is mapped (`lifecycle stripe prices`)"
)


def billed_price(sessions: sessionmaker[Session], customer_id: str) -> str | None:
    """The Stripe price the customer's latest subscription bills (for a customer with no tier)."""
    with sessions() as session:
        return session.scalar(
            select(Subscription.stripe_price_id)
            .where(Subscription.customer_id == customer_id)
            .order_by(Subscription.updated_at.desc(), Subscription.id.desc())
            .limit(1)
        )


def _without_tier(
    price_id: str | None, customer_id: str, stage: str, period: Any, used: dict[str, Decimal]
) -> dict[str, Any]:
    """Entitlements of a customer whose price maps to no tier: never a tier's limits (not
    Starter's), every feature the catalog has on, the price named so ops can map it."""
    metrics = {
        metric: {
            "unit": unit, "limit": None, "limit_kind": None, "used": number(used.get(metric, ZERO)),
            "remaining": None, "overage": 0, "percent": None, "allowed": True,
        }
        for metric, unit in catalog.METRICS.items()
    }
    features = sorted({f for p in catalog.PLANS for f, on in p.features.items() if on})
    return {
        "customer_id": customer_id,
        "plan": None,
        "unmapped_price": price_id,
        "note": NO_TIER_NOTE,
        "stage": stage,
        "features": dict.fromkeys(features, True),
        "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
        "metrics": metrics,
        "next_plan": None,
        "feature_upgrades": {},
    }
