"""Policy for growth and retention: ``[renewal]`` (reminders and the expansion offer),
``[team_promotion]``, ``[save_offers]`` and ``[winback]``.

No ``from __future__ import annotations``: these dataclasses cross Temporal.
"""

from dataclasses import dataclass, field
from typing import Any

from lifecycle.contracts.policy_steps import (
    EmailStep,
    PolicyError,
    number,
    parse_one_step,
    parse_steps,
    stage_list,
    table,
)


@dataclass
class RenewalPolicy:
    """Before an annual plan renews, and when usage runs high (``[renewal]``).

    ``reminders``: emails ``days_before_end`` days before the subscription's current period
    ends (annual plans only). ``expansion``: the offer sent when usage ran above 80 % of a
    limit in ``expansion_periods`` consecutive billing periods, at most once every
    ``expansion_every_days``. No expansion offer to a customer in ``skip_stages``.
    """

    reminders: list[EmailStep] = field(default_factory=list)
    expansion: EmailStep | None = None
    expansion_periods: int = 2
    expansion_every_days: float = 90.0
    skip_stages: list[str] = field(default_factory=lambda: ["past_due"])


@dataclass
class TeamPromotionPolicy:
    """The Business-tier promotion for a team on a smaller plan (``[team_promotion]``).

    Sent once, when the ``seats`` metric reaches ``min_seats`` or the activation fact
    ``fact`` was reported that many times, to a customer on one of ``plans``; never in a
    trial's first ``trial_grace_days`` days, in ``skip_stages``, or to a customer who was on
    ``tier`` (or above) in the last ``recent_days``.
    """

    step: EmailStep | None = None
    min_seats: int = 3
    fact: str = "invited_teammate"
    plans: list[str] = field(default_factory=lambda: ["starter", "professional"])
    tier: str = "business"
    trial_grace_days: float = 3.0
    recent_days: float = 90.0
    skip_stages: list[str] = field(default_factory=lambda: ["past_due"])


@dataclass
class OfferRule:
    """The save offer for one cancellation reason: a pause or a coupon for ``months``, or a
    downgrade to the next cheaper tier."""

    kind: str  # pause | downgrade | coupon
    months: int = 1
    percent_off: float = 0.0


# What a pause leaves of the customer's access (``save_offers.pause_access``).
PAUSE_KEEP = "keep"  # everything, as if billed (the service given away)
PAUSE_READ_ONLY = "read_only"  # features readable, no metered usage
PAUSE_NONE = "none"  # no feature, no metered usage (the default)
PAUSE_ACCESS = (PAUSE_KEEP, PAUSE_READ_ONLY, PAUSE_NONE)


@dataclass
class SaveOffersPolicy:
    """Cancellation save: one offer by reason, answered within ``window_days``, at most one
    per customer per ``once_per_days``. A reason without an offer cancels at once. While an
    accepted pause runs (no invoices), access is ``pause_access``: keep, read_only or none."""

    window_days: float = 7.0
    once_per_days: float = 365.0
    offers: dict[str, OfferRule] = field(default_factory=dict)
    pause_access: str = PAUSE_NONE


@dataclass
class WinbackPolicy:
    """Win-back after a cancellation took effect (``steps``) or a trial expired
    (``trial_steps``): emails on their ``day``, with a coupon of ``percent_off`` for
    ``duration_months`` (0: the first invoice only) applied on reactivation; no answer
    ``lost_after_days`` after the last email: lost."""

    steps: list[EmailStep] = field(default_factory=list)
    trial_steps: list[EmailStep] = field(default_factory=list)
    percent_off: float = 0.0
    duration_months: int = 0
    lost_after_days: float = 14.0


def parse_renewal(raw: Any) -> RenewalPolicy:
    table(raw, "renewal", set(RenewalPolicy.__dataclass_fields__))
    reminders = parse_steps(raw.get("reminders", []), "renewal.reminders")
    for r in reminders:
        if r.days_before_end <= 0:
            raise PolicyError(f"renewal.reminders.{r.name}: days_before_end must be positive")
    return RenewalPolicy(
        reminders=reminders,
        expansion=parse_one_step(raw.get("expansion"), "renewal.expansion"),
        expansion_periods=int(number(raw, "expansion_periods", 2, "renewal", minimum=1)),
        expansion_every_days=number(raw, "expansion_every_days", 90, "renewal"),
        skip_stages=stage_list(raw.get("skip_stages", ["past_due"]), "renewal.skip_stages"),
    )


def parse_team_promotion(raw: Any) -> TeamPromotionPolicy:
    table(raw, "team_promotion", set(TeamPromotionPolicy.__dataclass_fields__))
    for key in ("fact", "tier"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key]):
            raise PolicyError(f"team_promotion.{key}: required text")
    return TeamPromotionPolicy(
        step=parse_one_step(raw.get("step"), "team_promotion.step"),
        min_seats=int(number(raw, "min_seats", 3, "team_promotion", minimum=1)),
        fact=str(raw.get("fact", "invited_teammate")),
        plans=stage_list(raw.get("plans", ["starter", "professional"]), "team_promotion.plans"),
        tier=str(raw.get("tier", "business")),
        trial_grace_days=number(raw, "trial_grace_days", 3, "team_promotion"),
        recent_days=number(raw, "recent_days", 90, "team_promotion"),
        skip_stages=stage_list(raw.get("skip_stages", ["past_due"]), "team_promotion.skip_stages"),
    )


# the cancellation reasons a save offer may answer (lifecycle.contracts.winback.CANCEL_REASONS)
_REASONS = ("too_expensive", "missing_features", "not_using", "switched", "temporary", "other")


_OFFER_KINDS = ("pause", "downgrade", "coupon")


def parse_save_offers(raw: Any) -> SaveOffersPolicy:
    table(raw, "save_offers", {"window_days", "once_per_days", "offers", "pause_access"})
    pause_access = str(raw.get("pause_access", PAUSE_NONE))
    if pause_access not in PAUSE_ACCESS:
        raise PolicyError(f"save_offers.pause_access: expected one of {', '.join(PAUSE_ACCESS)}, got {pause_access!r}")
    offers_raw = raw.get("offers", {})
    if not isinstance(offers_raw, dict):
        raise PolicyError("save_offers.offers: expected a table reason = {kind, months, percent_off}")
    offers: dict[str, OfferRule] = {}
    for reason, item in offers_raw.items():
        where = f"save_offers.offers.{reason}"
        if reason not in _REASONS:
            raise PolicyError(f"{where}: unknown reason; expected one of {', '.join(_REASONS)}")
        if not isinstance(item, dict) or set(item) - {"kind", "months", "percent_off"}:
            raise PolicyError(f"{where}: expected {{kind = ..., months = N, percent_off = P}}")
        rule = OfferRule(
            kind=str(item.get("kind", "")),
            months=int(item.get("months", 1)),
            percent_off=float(item.get("percent_off", 0)),
        )
        if rule.kind not in _OFFER_KINDS:
            raise PolicyError(f"{where}.kind: expected one of {', '.join(_OFFER_KINDS)}")
        if rule.kind == "pause" and not 1 <= rule.months <= 3:
            raise PolicyError(f"{where}.months: a pause lasts 1 to 3 months")
        if rule.kind == "coupon" and (not 0 < rule.percent_off <= 100 or rule.months < 1):
            raise PolicyError(f"{where}: a coupon needs percent_off (0-100] and months >= 1")
        offers[reason] = rule
    policy = SaveOffersPolicy(
        window_days=float(raw.get("window_days", 7)),
        once_per_days=float(raw.get("once_per_days", 365)),
        offers=offers,
        pause_access=pause_access,
    )
    if policy.window_days <= 0 or policy.once_per_days < 0:
        raise PolicyError("save_offers: window_days must be positive, once_per_days not negative")
    return policy


def parse_winback(raw: Any) -> WinbackPolicy:
    table(raw, "winback", set(WinbackPolicy.__dataclass_fields__))
    policy = WinbackPolicy(
        steps=parse_steps(raw.get("steps", []), "winback.steps"),
        trial_steps=parse_steps(raw.get("trial_steps", []), "winback.trial_steps"),
        percent_off=float(raw.get("percent_off", 0)),
        duration_months=int(raw.get("duration_months", 0)),
        lost_after_days=float(raw.get("lost_after_days", 14)),
    )
    if not 0 <= policy.percent_off <= 100 or policy.duration_months < 0 or policy.lost_after_days <= 0:
        raise PolicyError("winback: percent_off 0-100, duration_months >= 0, lost_after_days > 0")
    return policy
