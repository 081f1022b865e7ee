"""What crosses Temporal for growth: the renewal reminders, the expansion offer and the
team promotion (the entity's memory of them, the children's inputs, the activity's answer).

One dataclass in, one out; new fields get defaults so running histories still decode.
No ``from __future__ import annotations``: these dataclasses cross Temporal.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from lifecycle.contracts.policy import EmailStep
from lifecycle.contracts.tiers import Tiers

RENEWAL_CAMPAIGN = "renewal"
EXPANSION_CAMPAIGN = "expansion"
TEAM_PROMOTION_CAMPAIGN = "team_promotion"

# how many high-usage periods the entity remembers (it needs the last few only)
HIGH_PERIODS_KEPT = 6


@dataclass
class HighPeriod:
    """A billing period in which some usage counter crossed 80 % of its limit."""

    start: datetime
    end: datetime | None = None


@dataclass
class GrowthState:
    """What the entity remembers for retention (part of CustomerState, kept across
    continue-as-new)."""

    # the renewal whose reminders were started (or dropped): one per period end
    renewal_period_end: datetime | None = None
    renewal_workflow: str | None = None  # while its reminders may still go out
    renewal_plan: str | None = None  # the terms the running reminders state
    renewal_interval: str | None = None
    # a renewal told to drop whose end the entity has not heard yet (its id is reused when
    # the same date's reminders start again)
    renewal_closing: str | None = None
    # the same date's reminders start again (on the new terms) once that one has closed:
    # after a plan change that stays annual, or a cancellation undone
    renewal_restart: bool = False
    # periods with an 80 % crossing, oldest first (bounded)
    high_periods: list[HighPeriod] = field(default_factory=list)
    last_expansion_offer_at: datetime | None = None
    # activation fact -> how many times it was reported (each report its own event id)
    fact_reports: dict[str, int] = field(default_factory=dict)
    team_promoted_at: datetime | None = None
    # a team promotion that qualified but was held back (trial's first days, dunning, ...):
    # its trigger, asked again after every later event, and the reason last recorded
    team_held_why: str | None = None
    team_held_count: int = 0
    team_held_reason: str | None = None
    # the last time the customer was seen on the promoted tier or above
    on_team_tier_at: datetime | None = None

    def remember_high_period(self, start: datetime, end: datetime | None) -> bool:
        """Note a period with an 80 % crossing; False when it was known already."""
        if any(p.start == start for p in self.high_periods):
            return False
        self.high_periods.append(HighPeriod(start, end))
        self.high_periods.sort(key=lambda p: p.start)
        del self.high_periods[:-HIGH_PERIODS_KEPT]
        return True

    def consecutive_high_periods(self, start: datetime) -> int:
        """How many high periods run back-to-back up to the one starting at ``start``
        (each one's end is the next one's start; a period without a known end counts as
        adjacent to the next when that starts within 32 days)."""
        by_start = {p.start: p for p in self.high_periods}
        current = by_start.get(start)
        if current is None:
            return 0
        run = 1
        while True:
            prev = next(
                (
                    p
                    for p in self.high_periods
                    if (p.end == current.start)
                    or (p.end is None and timedelta(0) < current.start - p.start <= timedelta(days=32))
                ),
                None,
            )
            if prev is None:
                return run
            run, current = run + 1, prev


@dataclass
class RenewalInput:
    """The reminders before one renewal (``customer-{id}/renewal/{YYYYMMDD}``)."""

    customer_id: str
    period_end: datetime  # the renewal date: the subscription's current period end
    plan: str
    interval: str
    reminders: list[EmailStep]
    stripe_subscription_id: str | None = None
    day_seconds: float = 86400.0
    tiers: Tiers | None = None  # the entity's snapshot: the price when the mirror has none
    interval_count: int = 1  # renews every interval_count intervals (every two years: 2)


@dataclass
class RenewalTermsInput:
    customer_id: str
    stripe_subscription_id: str | None = None


@dataclass
class RenewalTerms:
    """What the renewal will charge (Stripe's preview invoice, else the billing mirror) and on
    which card (the mirror's default card)."""

    amount_cents: int | None = None  # after discounts; None: no mirrored subscription
    currency: str = "usd"
    card: str | None = None  # e.g. "Visa ending 4242"; None: the mirror does not know the card
    source: str = "mirror"  # preview: Stripe's preview invoice (tax, discounts); mirror: the fallback


@dataclass
class OfferInput:
    """One offer email (expansion, team promotion): recorded on the timeline, then sent."""

    customer_id: str
    campaign: str
    step: EmailStep
    context: dict[str, Any] = field(default_factory=dict)  # what the template shows
    detail: dict[str, Any] = field(default_factory=dict)  # what the timeline records (why, what)
    paused: bool = False  # made while ops paused marketing: the offer waits for resume

