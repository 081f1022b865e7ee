"""Campaign results per step and A/B variant: sent, delivered, opened, clicked, converted.

Every customer a step reached is in exactly one group: a variant (or ``-`` when the step
ran no test) or the holdout, who got no email but was recorded at the moment they would
have. Conversion is the campaign's goal (``[conversions]`` in campaigns.toml) reached
within ``within_days`` after that moment; rates are per customer in the group
(intention to treat: a bounced email still counts in its group). The difference to the
holdout's rate, in percentage points, is the lift the email made.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.contracts.policy import Conversion
from lifecycle.models import EmailMessage, Invoice, LifecycleEvent

HANDED_OVER = {"sent", "delivered", "opened", "clicked", "bounced", "dropped", "spam_report",
               "uncertain", "blocked"}
DELIVERED = {"delivered", "opened", "clicked", "spam_report"}
OPENED = {"opened", "clicked"}
CLICKED = {"clicked"}


@dataclass
class GroupResult:
    step: str
    variant: str
    customers: int = 0
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    converted: int = 0
    lift_pp: float | None = None  # conversion rate minus the holdout's, percentage points

    @property
    def conversion_rate(self) -> float:
        return self.converted / self.customers if self.customers else 0.0


def _goal_times(
    session: Session, goal: str, customers: Iterable[str]
) -> dict[str, list[dt.datetime]]:
    ids = sorted(set(customers))
    out: dict[str, list[dt.datetime]] = defaultdict(list)
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        rows: list[Any] = []  # (customer_id, when) rows
        if goal == "paid":
            rows += session.execute(
                select(Invoice.customer_id, Invoice.paid_at).where(
                    Invoice.customer_id.in_(chunk), Invoice.paid_at.is_not(None),
                    Invoice.amount_paid_cents > 0,
                )
            ).all()
            rows += _events(session, chunk, "stage_changed", "active")
        elif goal.startswith("stage:"):
            rows += _events(session, chunk, "stage_changed", goal.split(":", 1)[1])
        elif goal.startswith("event:"):
            rows += _events(session, chunk, goal.split(":", 1)[1], None)
        for cid, at in rows:
            if cid and at:
                out[cid].append(at)
    for times in out.values():
        times.sort()
    return out


def _events(
    session: Session, chunk: list[str], kind: str, to_stage: str | None
) -> list[tuple[str, dt.datetime]]:
    q = select(LifecycleEvent.customer_id, LifecycleEvent.occurred_at).where(
        LifecycleEvent.customer_id.in_(chunk), LifecycleEvent.kind == kind
    )
    if to_stage is not None:
        q = q.where(LifecycleEvent.to_stage == to_stage)
    return list(session.execute(q).all())


def campaign_results(
    session: Session,
    campaign: str,
    conversion: Conversion,
    *,
    day_seconds: float = 86400.0,
    step: str | None = None,
) -> list[GroupResult]:
    q = select(
        EmailMessage.step, EmailMessage.variant, EmailMessage.customer_id,
        EmailMessage.status, EmailMessage.created_at,
    ).where(EmailMessage.campaign == campaign, EmailMessage.is_test.is_(False))
    if step:
        q = q.where(EmailMessage.step == step)
    messages = session.execute(q).all()
    window = dt.timedelta(seconds=conversion.within_days * day_seconds)
    goals = _goal_times(session, conversion.goal, (m[2] for m in messages if m[2]))
    groups: dict[tuple[str, str], GroupResult] = {}
    seen: set[tuple[str, str]] = set()
    for step_name, variant, customer_id, status, created_at in messages:
        if status in ("failed", "sending", "queued") or not customer_id:
            continue
        if (step_name, customer_id) in seen:
            continue
        seen.add((step_name, customer_id))
        label = variant or "-"
        g = groups.setdefault((step_name, label), GroupResult(step=step_name, variant=label))
        g.customers += 1
        g.sent += status in HANDED_OVER
        g.delivered += status in DELIVERED
        g.opened += status in OPENED
        g.clicked += status in CLICKED
        times = goals.get(customer_id, [])
        i = bisect_right(times, created_at)
        g.converted += i < len(times) and times[i] <= created_at + window
    results = sorted(groups.values(), key=lambda g: (g.step, g.variant == "holdout", g.variant))
    for g in results:
        hold = groups.get((g.step, "holdout"))
        if hold is not None and hold.customers and g.variant != "holdout":
            g.lift_pp = 100 * (g.conversion_rate - hold.conversion_rate)
    return results
