"""The plan catalog: the roadmap's four tiers, their prices, usage limits and feature flags.

This module is the one place the tiers are defined. The database ``plans`` table is
seeded from it (``lifecycle db upgrade``), Stripe is synced from it
(``lifecycle stripe sync``), and entitlements are computed from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lifecycle.contracts.money import money

LimitKind = Literal["hard", "soft"]


@dataclass(frozen=True)
class Limit:
    metric: str
    amount: float
    kind: LimitKind  # hard: refused past the limit; soft: allowed, flagged as overage
    unit: str = ""


@dataclass(frozen=True)
class Plan:
    code: str
    name: str
    rank: int  # ordering for "next tier up"
    monthly_price_cents: int
    annual_price_cents: int
    features: dict[str, bool] = field(default_factory=dict)
    limits: tuple[Limit, ...] = ()
    tagline: str = ""

    def limit(self, metric: str) -> Limit | None:
        return next((lim for lim in self.limits if lim.metric == metric), None)

    def price_cents(self, interval: str) -> int:
        if interval == "month":
            return self.monthly_price_cents
        if interval == "year":
            return self.annual_price_cents
        raise ValueError(f"unknown billing interval {interval!r}; expected 'month' or 'year'")

    @property
    def monthly_price(self) -> str:
        """The catalog's monthly price (US dollars): ``$49``."""
        return money(self.monthly_price_cents, "usd")


FEATURES = ("api_access", "team_features", "custom_models", "sso", "priority_support")
METRICS = {
    "ai_requests": "requests",
    "seats": "seats",
    "storage_gb": "GB",
}


def _features(*on: str) -> dict[str, bool]:
    unknown = set(on) - set(FEATURES)
    assert not unknown, unknown
    return {name: name in on for name in FEATURES}


# Annual plans are ten months' price: two months free.
PLANS: tuple[Plan, ...] = (
    Plan(
        code="starter",
        name="Starter",
        rank=1,
        monthly_price_cents=1900,
        annual_price_cents=19000,
        features=_features(),
        limits=(
            Limit("ai_requests", 1_000, "hard", "requests"),
            Limit("seats", 1, "hard", "seats"),
            Limit("storage_gb", 5, "soft", "GB"),
        ),
        tagline="For individuals getting started",
    ),
    Plan(
        code="professional",
        name="Professional",
        rank=2,
        monthly_price_cents=4900,
        annual_price_cents=49000,
        features=_features("api_access"),
        limits=(
            Limit("ai_requests", 10_000, "hard", "requests"),
            Limit("seats", 3, "hard", "seats"),
            Limit("storage_gb", 50, "soft", "GB"),
        ),
        tagline="API access and 10x the requests",
    ),
    Plan(
        code="business",
        name="Business",
        rank=3,
        monthly_price_cents=9900,
        annual_price_cents=99000,
        features=_features("api_access", "team_features", "priority_support"),
        limits=(
            Limit("ai_requests", 50_000, "soft", "requests"),
            Limit("seats", 10, "hard", "seats"),
            Limit("storage_gb", 250, "soft", "GB"),
        ),
        tagline="Team collaboration and priority support",
    ),
    Plan(
        code="enterprise",
        name="Enterprise",
        rank=4,
        monthly_price_cents=19900,
        annual_price_cents=199000,
        features=_features("api_access", "team_features", "custom_models", "sso", "priority_support"),
        limits=(
            Limit("ai_requests", 250_000, "soft", "requests"),
            Limit("seats", 50, "soft", "seats"),
            Limit("storage_gb", 1_000, "soft", "GB"),
        ),
        tagline="SSO, custom models and a dedicated success manager",
    ),
)

PLANS_BY_CODE: dict[str, Plan] = {p.code: p for p in PLANS}
DEFAULT_TRIAL_PLAN = "starter"


# A customer's plan when their Stripe price maps to no tier (an account's own price that
# nothing maps yet): usage is counted but not limited, and no feature is withheld, until
# ops map the price (`lifecycle stripe prices`) and replay. Never taken for a tier.
NO_TIER = ""


# --- billing periods: what an amount per period is per year and per month -----------------

# Stripe's recurring intervals and how many of each make a year; a price bills every
# ``interval_count`` of them (quarterly: month x3; every six months: month x6).
PERIODS_PER_YEAR: dict[str, int] = {"day": 365, "week": 52, "month": 12, "year": 1}


def known_period(interval: str | None, interval_count: int | None = 1) -> bool:
    """A period :func:`per_year_cents` can reckon (workflow code asks before it reckons)."""
    return interval in PERIODS_PER_YEAR and (interval_count is None or interval_count >= 1)


def per_year_cents(amount_cents: int, interval: str, interval_count: int | None = 1) -> int:
    """What ``amount_cents`` billed every ``interval_count`` ``interval`` comes to in a year
    (a weekly $10: $520; a quarterly $57: $228), rounded to the cent."""
    if not known_period(interval, interval_count):
        raise ValueError(
            f"unknown billing period {interval_count or 1} x {interval!r}; expected a count of at least 1 "
            f"of {', '.join(PERIODS_PER_YEAR)}"
        )
    return round(amount_cents * PERIODS_PER_YEAR[interval] / (interval_count or 1))


def per_month_cents(amount_cents: int, interval: str, interval_count: int | None = 1) -> int:
    """The same amount per month (MRR): a twelfth of :func:`per_year_cents`."""
    return round(per_year_cents(amount_cents, interval, interval_count) / 12)


def get_plan(code: str) -> Plan:
    try:
        return PLANS_BY_CODE[code]
    except KeyError:
        raise KeyError(f"unknown plan {code!r}; expected one of {', '.join(PLANS_BY_CODE)}") from None


def next_plan_up(code: str) -> Plan | None:
    current = get_plan(code)
    higher = [p for p in PLANS if p.rank > current.rank]
    return min(higher, key=lambda p: p.rank) if higher else None


def added_by(upper: Plan, lower: Plan) -> list[str]:
    """What ``upper`` adds over ``lower``, in words a customer reads."""
    out = [f.replace("_", " ") for f in FEATURES if upper.features.get(f) and not lower.features.get(f)]
    for lim in upper.limits:
        low = lower.limit(lim.metric)
        if low and lim.amount > low.amount:
            out.append(f"{lim.amount:,.0f} {lim.unit or lim.metric} (from {low.amount:,.0f})")
    return out
