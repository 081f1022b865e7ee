"""Campaign policy: the schedule, delays and template of every campaign step, as data.

Marketers edit ``templates/campaigns.toml`` and publish it (``lifecycle policy publish``):
a new entity gets it in its input, a running one loads the published version through an
activity (``lifecycle/contracts/policy_versions.py``), so what it decided on is in its
history. Workflow code never holds these constants.

Everything here is a plain dataclass that Temporal's data converter serialises; new
fields must get defaults so old histories still decode.
"""


import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from lifecycle.contracts.policy_billing import (
    DEFAULT_HARD_DECLINES,
    END_ACTIONS,
    CardExpiryPolicy,
    DunningNotices,
    DunningPolicy,
    DunningStage,
    parse_card_expiry,
    parse_dunning,
)
from lifecycle.contracts.policy_retention import (
    OfferRule,
    RenewalPolicy,
    SaveOffersPolicy,
    TeamPromotionPolicy,
    WinbackPolicy,
    parse_renewal,
    parse_save_offers,
    parse_team_promotion,
    parse_winback,
)
from lifecycle.contracts.policy_steps import (
    CATEGORIES,
    EmailStep,
    EmailVariant,
    PolicyError,
    parse_steps,
    table,
)


@dataclass
class Conversion:
    """What counts as a conversion for a campaign's results.

    goal: ``paid`` (an invoice paid or the stage moved to active), ``stage:<name>``
    or ``event:<kind>`` (a timeline entry of that kind), within ``within_days`` of the email.
    """

    goal: str = "paid"
    within_days: float = 7.0


@dataclass
class TrialPolicy:
    length_days: float = 14.0
    reminders: list[EmailStep] = field(default_factory=list)


@dataclass
class OnboardingPolicy:
    steps: list[EmailStep] = field(default_factory=list)


@dataclass
class UsagePolicy:
    """Emails when a usage counter crosses 80 % or 100 % of the plan's limit.

    Each goes out at most once per metric per billing period. ``skip_stages``: no usage
    email to a customer in these stages (dunning first). Trial customers get the
    ``*_trial_template`` versions.
    """

    nudge_template: str = "usage_nudge"
    nudge_trial_template: str = "usage_nudge_trial"
    limit_reached_template: str = "usage_limit_reached"
    limit_reached_trial_template: str = "usage_limit_reached_trial"
    overage_template: str = "usage_overage"
    overage_trial_template: str = "usage_overage_trial"
    nudge_category: str = "marketing"
    notice_category: str = "transactional"  # limit reached / overage
    skip_stages: list[str] = field(default_factory=lambda: ["past_due"])


@dataclass
class CampaignPolicy:
    """All campaigns' policy; ``day_seconds`` is how long a policy day lasts (86400 in production)."""

    trial: TrialPolicy = field(default_factory=TrialPolicy)
    onboarding: OnboardingPolicy = field(default_factory=OnboardingPolicy)
    day_seconds: float = 86400.0
    usage: UsagePolicy = field(default_factory=UsagePolicy)
    source: str = ""  # the file it was loaded from, for ops reading the history
    # campaign name -> what counts as converted (`lifecycle campaigns results`)
    conversions: dict[str, Conversion] = field(default_factory=dict)
    dunning: DunningPolicy = field(default_factory=DunningPolicy)
    card_expiry: CardExpiryPolicy = field(default_factory=CardExpiryPolicy)
    renewal: RenewalPolicy = field(default_factory=RenewalPolicy)
    team_promotion: TeamPromotionPolicy = field(default_factory=TeamPromotionPolicy)
    save_offers: SaveOffersPolicy = field(default_factory=SaveOffersPolicy)
    winback: WinbackPolicy = field(default_factory=WinbackPolicy)

    def days(self, n: float) -> timedelta:
        return timedelta(seconds=n * self.day_seconds)


def _conversions(raw: Any) -> dict[str, Conversion]:
    if not isinstance(raw, dict):
        raise PolicyError("conversions: expected a table campaign = {goal, within_days}")
    out = {}
    for campaign, item in raw.items():
        if not isinstance(item, dict) or set(item) - {"goal", "within_days"}:
            raise PolicyError(f"conversions.{campaign}: expected {{goal = ..., within_days = N}}")
        conv = Conversion(
            goal=str(item.get("goal", "paid")), within_days=float(item.get("within_days", 7))
        )
        if not (conv.goal == "paid" or conv.goal.startswith(("stage:", "event:"))):
            raise PolicyError(
                f"conversions.{campaign}.goal: expected paid, stage:<stage> or event:<kind>"
            )
        if conv.within_days <= 0:
            raise PolicyError(f"conversions.{campaign}.within_days: must be positive")
        out[str(campaign)] = conv
    return out


def email_steps(policy: Any) -> list[tuple[str, EmailStep]]:
    """Every email step in a policy, with its campaign's name, found by walking the dataclasses.

    Generic on purpose: campaigns added later (usage nudges, dunning, ...) are found
    without this function knowing them.
    """
    found: list[tuple[str, EmailStep]] = []

    def walk(obj: Any, campaign: str) -> None:
        if isinstance(obj, EmailStep):
            found.append((campaign, obj))
        elif isinstance(obj, list | tuple):
            for item in obj:
                walk(item, campaign)
        elif isinstance(obj, dict):
            for item in obj.values():
                walk(item, campaign)
        elif hasattr(obj, "__dataclass_fields__"):
            for name in obj.__dataclass_fields__:
                walk(getattr(obj, name), campaign or name)

    walk(policy, "")
    return found


def parse_policy(raw: dict[str, Any], *, day_seconds: float = 86400.0, source: str = "") -> CampaignPolicy:
    try:
        trial_raw = raw.get("trial", {})
        trial = TrialPolicy(
            length_days=float(trial_raw.get("length_days", 14)),
            reminders=parse_steps(trial_raw.get("reminders", []), "trial.reminders"),
        )
        if trial.length_days <= 0:
            raise PolicyError("trial.length_days: must be positive")
        for r in trial.reminders:
            if r.days_before_end >= trial.length_days:
                raise PolicyError(
                    f"trial.reminders.{r.name}: days_before_end ({r.days_before_end}) "
                    f"must be less than the trial length ({trial.length_days})"
                )
        onboarding = OnboardingPolicy(
            steps=parse_steps(raw.get("onboarding", {}).get("steps", []), "onboarding.steps")
        )
        usage = _usage(raw.get("usage", {}))
        renewal = parse_renewal(raw.get("renewal", {}))
        team_promotion = parse_team_promotion(raw.get("team_promotion", {}))
        save_offers = parse_save_offers(raw.get("save_offers", {}))
        winback = parse_winback(raw.get("winback", {}))
    except (TypeError, ValueError, AttributeError) as exc:
        raise PolicyError(f"{source or 'policy'}: {exc}") from None
    conversions = _conversions(raw.get("conversions", {}))
    dunning = parse_dunning(raw.get("dunning", {}))
    card_expiry = parse_card_expiry(raw.get("card_expiry"))
    return CampaignPolicy(
        trial=trial,
        onboarding=onboarding,
        day_seconds=day_seconds,
        source=source,
        usage=usage,
        conversions=conversions,
        dunning=dunning,
        card_expiry=card_expiry,
        renewal=renewal,
        team_promotion=team_promotion,
        save_offers=save_offers,
        winback=winback,
    )


def _usage(raw: dict[str, Any]) -> UsagePolicy:
    table(raw, "usage", set(UsagePolicy.__dataclass_fields__))
    for key, value in raw.items():
        if key == "skip_stages":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise PolicyError("usage.skip_stages: expected a list of stage names")
        elif not isinstance(value, str) or not value:
            raise PolicyError(f"usage.{key}: required text")
    usage = UsagePolicy(**raw)
    for key in ("nudge_category", "notice_category"):
        if getattr(usage, key) not in CATEGORIES:
            raise PolicyError(f"usage.{key}: expected one of {CATEGORIES}")
    return usage


def load_policy(path: Path, *, day_seconds: float = 86400.0) -> CampaignPolicy:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"campaign policy file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML: {exc}") from None
    return parse_policy(raw, day_seconds=day_seconds, source=str(path.name))


__all__ = [
    "CATEGORIES",
    "CampaignPolicy",
    "CardExpiryPolicy",
    "Conversion",
    "DEFAULT_HARD_DECLINES",
    "DunningNotices",
    "DunningPolicy",
    "DunningStage",
    "END_ACTIONS",
    "EmailStep",
    "EmailVariant",
    "OfferRule",
    "OnboardingPolicy",
    "PolicyError",
    "RenewalPolicy",
    "SaveOffersPolicy",
    "TeamPromotionPolicy",
    "TrialPolicy",
    "UsagePolicy",
    "WinbackPolicy",
    "email_steps",
    "load_policy",
    "parse_dunning",
    "parse_policy",
]
