"""The tiers as a workflow decides on them: a snapshot of the catalog, carried in a new
entity's input and in every published policy version (policy_versions.py).

An operator's edit to the catalog (a price, a rank, a new tier) reaches a running entity
once published; a campaign in flight keeps deciding upgrade-now or downgrade-later, and
writing its usage emails, from the tiers it started with, so its history replays the same.

No ``from __future__ import annotations``: these dataclasses cross Temporal.
"""

from dataclasses import dataclass, field

from lifecycle.contracts import catalog
from lifecycle.contracts.money import money


@dataclass
class TierLimit:
    metric: str
    amount: float
    kind: str  # hard | soft
    unit: str = ""


@dataclass
class Tier:
    code: str
    name: str
    rank: int  # ordering for "next tier up"
    monthly_price_cents: int
    annual_price_cents: int
    features: dict[str, bool] = field(default_factory=dict)
    limits: list[TierLimit] = field(default_factory=list)

    def limit(self, metric: str) -> TierLimit | None:
        return next((lim for lim in self.limits if lim.metric == metric), None)

    def annual_cents(self, interval: str | None) -> int:
        """What a year costs on ``interval`` billing at this tier's prices (how tiers and
        intervals compare): yearly at the annual price, any other period (monthly,
        quarterly, weekly, daily) at the monthly price, the only other one the catalog
        has; never raises. What a price Stripe bills comes to per year is
        :func:`~lifecycle.contracts.catalog.per_year_cents` of its amount."""
        if interval == "year":
            return self.annual_price_cents
        return catalog.per_year_cents(self.monthly_price_cents, "month")

    def period_cents(self, interval: str | None, interval_count: int = 1) -> int:
        """This tier's price for one billing period of ``interval_count`` ``interval``s
        (a renewal every two years: twice the annual price)."""
        if not catalog.known_period(interval, interval_count):
            return self.annual_cents(interval)
        per_year = self.annual_cents(interval)
        return round(per_year * (interval_count or 1) / catalog.PERIODS_PER_YEAR[interval or "year"])

    @property
    def monthly_price(self) -> str:
        """The catalog's monthly price (US dollars): ``$49``."""
        return money(self.monthly_price_cents, "usd")


@dataclass
class Tiers:
    tiers: list[Tier] = field(default_factory=list)
    metric_units: dict[str, str] = field(default_factory=dict)

    @property
    def codes(self) -> list[str]:
        return [t.code for t in self.tiers]

    def get(self, code: str) -> Tier:
        found = self.find(code)
        if found is None:
            raise KeyError(self.unknown(code))
        return found

    def find(self, code: str | None) -> Tier | None:
        """The tier ``code`` (None: not one of these; workflow code records that and goes on)."""
        return next((t for t in self.tiers if t.code == code), None)

    def unknown(self, code: str | None) -> str:
        """What a workflow records for a tier code it cannot find."""
        return f"unknown plan {code!r}; expected one of {', '.join(self.codes)}"

    def next_up(self, code: str) -> Tier | None:
        current = self.get(code)
        higher = [t for t in self.tiers if t.rank > current.rank]
        return min(higher, key=lambda t: t.rank) if higher else None

    def annual_cents(self, plan: str, interval: str | None) -> int:
        return self.get(plan).annual_cents(interval)


def tiers_from_catalog() -> Tiers:
    """The catalog as it is now (the starter takes this when a workflow starts)."""
    return Tiers(
        tiers=[
            Tier(
                code=p.code,
                name=p.name,
                rank=p.rank,
                monthly_price_cents=p.monthly_price_cents,
                annual_price_cents=p.annual_price_cents,
                features=dict(p.features),
                limits=[TierLimit(lim.metric, lim.amount, lim.kind, lim.unit) for lim in p.limits],
            )
            for p in catalog.PLANS
        ],
        metric_units=dict(catalog.METRICS),
    )


def added_by(upper: Tier, lower: Tier) -> list[str]:
    """What ``upper`` adds over ``lower``, in words a customer reads."""
    out = [f.replace("_", " ") for f, on in upper.features.items() if on and not lower.features.get(f)]
    for lim in upper.limits:
        low = lower.limit(lim.metric)
        if low and lim.amount > low.amount:
            out.append(f"{lim.amount:,.0f} {lim.unit or lim.metric} (from {low.amount:,.0f})")
    return out
