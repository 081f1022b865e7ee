"""Campaign policy: the schedule, delays and template of every campaign step, as data.

Marketers edit ``templates/campaigns.toml``. The starter loads it and passes it to a
workflow as input, so a policy change applies to new runs and never breaks running
ones (their input is in their history). Workflow code never holds these constants.

Everything here is a plain dataclass that Temporal's data converter serialises; new
fields must get defaults so old histories still decode.
"""


import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

CATEGORIES = ("marketing", "transactional")


class PolicyError(ValueError):
    """The policy file is malformed; the message names the key and the file."""


@dataclass
class EmailVariant:
    """One arm of an A/B test: a template and its share (weights are relative)."""

    name: str
    template: str
    weight: float = 1.0


@dataclass
class EmailStep:
    """One email of a campaign."""

    name: str
    template: str
    day: float = 0.0  # days after the campaign starts (onboarding, win-back, ...)
    days_before_end: float = 0.0  # days before the trial ends (trial reminders)
    skip_if: str | None = None  # activation fact that makes this step pointless
    category: str = "marketing"  # marketing (caps, quiet hours, unsubscribe) | transactional
    # The campaign variables this step gives its template, with sample values for previews
    # (`lifecycle templates check` fails a template that uses a variable its steps don't give).
    vars: dict[str, Any] = field(default_factory=dict)
    # A/B test: variants replace `template` (assigned per customer by hash); `holdout` is the
    # share of customers who get no email at all, so lift can be measured.
    variants: list[EmailVariant] = field(default_factory=list)
    holdout: float = 0.0


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


END_ACTIONS = ("cancel", "unpaid", "leave_past_due")
DEFAULT_HARD_DECLINES = [
    "expired_card", "stolen_card", "lost_card", "pickup_card", "restricted_card",
    "incorrect_number", "invalid_number", "invalid_account", "do_not_honor",
    "authentication_required",
]


@dataclass
class DunningStage:
    """One overdue state, keyed on days since the first failed payment (Kill Bill's
    overdue states): entered at ``day``, with its email; ``suspend``: access is refused
    from here (the usage check answers "payment overdue")."""

    name: str
    day: float
    email: EmailStep | None = None
    suspend: bool = False


@dataclass
class DunningNotices:
    """The emails dunning sends on events rather than on days."""

    card_update: EmailStep | None = None  # a hard decline: only a new card helps
    action_required: EmailStep | None = None  # 3-D Secure: the authentication link
    recovered: EmailStep | None = None  # paid: access is back
    ended: EmailStep | None = None  # the end action was taken


@dataclass
class DunningPolicy:
    """Payment recovery (``[dunning]`` in campaigns.toml). ``stages`` in day order; the
    engine retries open invoices on ``retry_days`` (retry mode ``engine``); at ``end_day``
    it takes ``end_action``: cancel | unpaid | leave_past_due. A decline code in
    ``hard_declines`` is never retried."""

    stages: list[DunningStage] = field(default_factory=list)
    retry_days: list[float] = field(default_factory=lambda: [1.0, 3.0, 5.0, 7.0])
    end_day: float = 21.0
    end_action: str = "cancel"
    hard_declines: list[str] = field(default_factory=lambda: list(DEFAULT_HARD_DECLINES))
    notices: DunningNotices = field(default_factory=DunningNotices)

    @property
    def suspend_day(self) -> float | None:
        """The day access is first refused (None: never)."""
        return next((s.day for s in self.stages if s.suspend), None)
def _default_card_expiry_reminders() -> list[EmailStep]:
    """The reminders of a policy written before ``[card_expiry]`` existed (and of entities
    started then, whose input carries no such section): 30 and 7 days before."""
    sample = {"days_left": 30, "card_brand": "visa", "card_last4": "4242", "card_expires": "12/2026"}
    return [
        EmailStep(name=f"expiring_{d}_days", template="card_expiring", days_before_end=d,
                  category="transactional", vars={**sample, "days_left": d})
        for d in (30, 7)
    ]


@dataclass
class CardExpiryPolicy:
    """Pre-dunning: reminders before the default card expires (``days_before_end``: days
    before the end of its expiry month), with the card-update link. ``skip_stages``: no
    reminders are started for a customer in these stages."""

    reminders: list[EmailStep] = field(default_factory=_default_card_expiry_reminders)
    skip_stages: list[str] = field(default_factory=lambda: ["canceled", "expired", "lost"])


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


@dataclass
class SaveOffersPolicy:
    """Cancellation save: one offer by reason, answered within ``window_days``, at most one
    per customer per ``once_per_days``. A reason without an offer cancels at once."""

    window_days: float = 7.0
    once_per_days: float = 365.0
    offers: dict[str, OfferRule] = field(default_factory=dict)


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


def _variants(raw: Any, where: str) -> list[EmailVariant]:
    if not isinstance(raw, list):
        raise PolicyError(f"{where}: expected a list of {{name, template, weight}}")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise PolicyError(f"{where}[{i}]: expected a table with name, template, weight")
        unknown = set(item) - {"name", "template", "weight"}
        if unknown:
            raise PolicyError(f"{where}[{i}]: unknown key(s) {sorted(unknown)}")
        for key in ("name", "template"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise PolicyError(f"{where}[{i}].{key}: required text")
        weight = item.get("weight", 1.0)
        if not isinstance(weight, int | float) or weight <= 0:
            raise PolicyError(f"{where}[{i}].weight: must be a positive number")
        if item["name"] == "holdout":
            raise PolicyError(f"{where}[{i}].name: 'holdout' is reserved for the holdout group")
        out.append(EmailVariant(name=item["name"], template=item["template"], weight=float(weight)))
    names = [v.name for v in out]
    if len(names) != len(set(names)):
        raise PolicyError(f"{where}: variant names must be unique, got {names}")
    return out


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


def _steps(raw: list[dict[str, Any]], where: str) -> list[EmailStep]:
    steps = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise PolicyError(f"{where}[{i}]: expected a table with name and template")
        unknown = set(item) - {f for f in EmailStep.__dataclass_fields__}
        if unknown:
            raise PolicyError(f"{where}[{i}]: unknown key(s) {sorted(unknown)}")
        for key in ("name", "template"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise PolicyError(f"{where}[{i}].{key}: required text")
        item = dict(item)
        variants_raw = item.pop("variants", [])
        if not isinstance(item.get("vars", {}), dict):
            raise PolicyError(f"{where}[{i}].vars: expected a table of variable = sample value")
        step = EmailStep(**item, variants=_variants(variants_raw, f"{where}[{i}].variants"))
        if step.category not in CATEGORIES:
            raise PolicyError(f"{where}[{i}].category: expected one of {CATEGORIES}")
        if not 0 <= step.holdout < 1:
            raise PolicyError(f"{where}[{i}].holdout: expected a share from 0 up to (not incl.) 1")
        if step.holdout and step.category != "marketing":
            raise PolicyError(f"{where}[{i}].holdout: only marketing steps may hold customers out")
        if step.day < 0 or step.days_before_end < 0:
            raise PolicyError(f"{where}[{i}]: day and days_before_end must not be negative")
        steps.append(step)
    names = [s.name for s in steps]
    if len(names) != len(set(names)):
        raise PolicyError(f"{where}: step names must be unique, got {names}")
    return steps


def parse_policy(raw: dict[str, Any], *, day_seconds: float = 86400.0, source: str = "") -> CampaignPolicy:
    try:
        trial_raw = raw.get("trial", {})
        trial = TrialPolicy(
            length_days=float(trial_raw.get("length_days", 14)),
            reminders=_steps(trial_raw.get("reminders", []), "trial.reminders"),
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
            steps=_steps(raw.get("onboarding", {}).get("steps", []), "onboarding.steps")
        )
        usage = _usage(raw.get("usage", {}))
        renewal = _renewal(raw.get("renewal", {}))
        team_promotion = _team_promotion(raw.get("team_promotion", {}))
        save_offers = _save_offers(raw.get("save_offers", {}))
        winback = _winback(raw.get("winback", {}))
    except (TypeError, ValueError, AttributeError) as exc:
        raise PolicyError(f"{source or 'policy'}: {exc}") from None
    conversions = _conversions(raw.get("conversions", {}))
    dunning = parse_dunning(raw.get("dunning", {}))
    card_expiry = _card_expiry(raw.get("card_expiry"))
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


def _card_expiry(raw: Any) -> CardExpiryPolicy:
    if raw is None:
        return CardExpiryPolicy()
    if not isinstance(raw, dict) or set(raw) - {"reminders", "skip_stages"}:
        raise PolicyError("card_expiry: expected a table with reminders and skip_stages")
    try:
        reminders = _steps(raw.get("reminders", []), "card_expiry.reminders")
    except (TypeError, ValueError, AttributeError) as exc:
        raise PolicyError(f"card_expiry: {exc}") from None
    for r in reminders:
        if r.days_before_end <= 0:
            raise PolicyError(f"card_expiry.reminders.{r.name}: days_before_end must be positive")
    stages = raw.get("skip_stages", CardExpiryPolicy().skip_stages)
    if not isinstance(stages, list) or not all(isinstance(v, str) for v in stages):
        raise PolicyError("card_expiry.skip_stages: expected a list of stage names")
    return CardExpiryPolicy(reminders=reminders, skip_stages=list(stages))


def _usage(raw: dict[str, Any]) -> UsagePolicy:
    if not isinstance(raw, dict):
        raise PolicyError("usage: expected a table")
    known = set(UsagePolicy.__dataclass_fields__)
    unknown = set(raw) - known
    if unknown:
        raise PolicyError(f"usage: unknown key(s) {sorted(unknown)}; expected {sorted(known)}")
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


def _one_step(raw: Any, where: str) -> EmailStep | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: expected a table with name and template")
    try:
        return _steps([raw], where)[0]
    except PolicyError as exc:  # one table, not a list: name its keys as written
        raise PolicyError(str(exc).replace(f"{where}[0]", where)) from None


def _stage_list(raw: Any, where: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise PolicyError(f"{where}: expected a list of names")
    return list(raw)


def _number(raw: dict[str, Any], key: str, default: float, where: str, *, minimum: float = 0) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise PolicyError(f"{where}.{key}: expected a number of at least {minimum:g}, got {value!r}")
    return float(value)


def _renewal(raw: Any) -> RenewalPolicy:
    if not isinstance(raw, dict):
        raise PolicyError("renewal: expected a table")
    known = set(RenewalPolicy.__dataclass_fields__)
    if unknown := set(raw) - known:
        raise PolicyError(f"renewal: unknown key(s) {sorted(unknown)}; expected {sorted(known)}")
    reminders = _steps(raw.get("reminders", []), "renewal.reminders")
    for r in reminders:
        if r.days_before_end <= 0:
            raise PolicyError(f"renewal.reminders.{r.name}: days_before_end must be positive")
    return RenewalPolicy(
        reminders=reminders,
        expansion=_one_step(raw.get("expansion"), "renewal.expansion"),
        expansion_periods=int(_number(raw, "expansion_periods", 2, "renewal", minimum=1)),
        expansion_every_days=_number(raw, "expansion_every_days", 90, "renewal"),
        skip_stages=_stage_list(raw.get("skip_stages", ["past_due"]), "renewal.skip_stages"),
    )


def _team_promotion(raw: Any) -> TeamPromotionPolicy:
    if not isinstance(raw, dict):
        raise PolicyError("team_promotion: expected a table")
    known = set(TeamPromotionPolicy.__dataclass_fields__)
    if unknown := set(raw) - known:
        raise PolicyError(f"team_promotion: unknown key(s) {sorted(unknown)}; expected {sorted(known)}")
    for key in ("fact", "tier"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key]):
            raise PolicyError(f"team_promotion.{key}: required text")
    return TeamPromotionPolicy(
        step=_one_step(raw.get("step"), "team_promotion.step"),
        min_seats=int(_number(raw, "min_seats", 3, "team_promotion", minimum=1)),
        fact=str(raw.get("fact", "invited_teammate")),
        plans=_stage_list(raw.get("plans", ["starter", "professional"]), "team_promotion.plans"),
        tier=str(raw.get("tier", "business")),
        trial_grace_days=_number(raw, "trial_grace_days", 3, "team_promotion"),
        recent_days=_number(raw, "recent_days", 90, "team_promotion"),
        skip_stages=_stage_list(raw.get("skip_stages", ["past_due"]), "team_promotion.skip_stages"),
    )


def _dunning_step(raw: Any, where: str) -> EmailStep | None:
    """A dunning email: one step, always transactional (it is about the customer's account)."""
    step = _one_step(raw, where)
    if step is not None and step.category != "transactional":
        raise PolicyError(f"{where}.category: dunning email is transactional")
    return step


def parse_dunning(raw: Any) -> DunningPolicy:
    """The ``[dunning]`` table; every refusal names the key."""
    if not isinstance(raw, dict):
        raise PolicyError("dunning: expected a table")
    known = {"stages", "retry_days", "end_day", "end_action", "hard_declines", "notices"}
    unknown = set(raw) - known
    if unknown:
        raise PolicyError(f"dunning: unknown key(s) {sorted(unknown)}; expected {sorted(known)}")
    stages = []
    for i, item in enumerate(raw.get("stages", [])):
        where = f"dunning.stages[{i}]"
        if not isinstance(item, dict) or set(item) - {"name", "day", "email", "suspend"}:
            raise PolicyError(f"{where}: expected {{name, day, email, suspend}}")
        if not isinstance(item.get("name"), str) or not item["name"]:
            raise PolicyError(f"{where}.name: required text")
        day = item.get("day")
        if not isinstance(day, int | float) or day < 0:
            raise PolicyError(f"{where}.day: a number of days, not negative")
        stages.append(DunningStage(
            name=item["name"], day=float(day), suspend=bool(item.get("suspend", False)),
            email=_dunning_step(item.get("email"), f"{where}.email"),
        ))
    days = [s.day for s in stages]
    if days != sorted(days):
        raise PolicyError("dunning.stages: list them in day order")
    names = [s.name for s in stages]
    if len(names) != len(set(names)) or {"recovered", "ended"} & set(names):
        raise PolicyError(f"dunning.stages: names must be unique and not recovered/ended, got {names}")
    retry_days = raw.get("retry_days", [1, 3, 5, 7])
    if not isinstance(retry_days, list) or not all(isinstance(d, int | float) and d > 0 for d in retry_days):
        raise PolicyError("dunning.retry_days: expected a list of positive day numbers")
    end_day = raw.get("end_day", 21)
    if not isinstance(end_day, int | float) or end_day <= 0:
        raise PolicyError("dunning.end_day: must be a positive number of days")
    if stages and end_day <= stages[-1].day:
        raise PolicyError(f"dunning.end_day ({end_day}) must come after the last stage ({stages[-1].day})")
    end_action = raw.get("end_action", "cancel")
    if end_action not in END_ACTIONS:
        raise PolicyError(f"dunning.end_action: expected one of {END_ACTIONS}, got {end_action!r}")
    hard = raw.get("hard_declines", DEFAULT_HARD_DECLINES)
    if not isinstance(hard, list) or not all(isinstance(c, str) and c for c in hard):
        raise PolicyError("dunning.hard_declines: expected a list of decline codes")
    notices_raw = raw.get("notices", {})
    if not isinstance(notices_raw, dict) or set(notices_raw) - set(DunningNotices.__dataclass_fields__):
        raise PolicyError(
            f"dunning.notices: expected tables among {sorted(DunningNotices.__dataclass_fields__)}"
        )
    notices = DunningNotices(**{
        k: _dunning_step(v, f"dunning.notices.{k}") for k, v in notices_raw.items()
    })
    return DunningPolicy(
        stages=stages, retry_days=sorted(float(d) for d in retry_days), end_day=float(end_day),
        end_action=end_action, hard_declines=list(hard), notices=notices,
    )
# the cancellation reasons a save offer may answer (lifecycle.contracts.winback.CANCEL_REASONS)
_REASONS = ("too_expensive", "missing_features", "not_using", "switched", "temporary", "other")
_OFFER_KINDS = ("pause", "downgrade", "coupon")


def _save_offers(raw: Any) -> SaveOffersPolicy:
    if not isinstance(raw, dict):
        raise PolicyError("save_offers: expected a table")
    unknown = set(raw) - {"window_days", "once_per_days", "offers"}
    if unknown:
        raise PolicyError(f"save_offers: unknown key(s) {sorted(unknown)}")
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
    )
    if policy.window_days <= 0 or policy.once_per_days < 0:
        raise PolicyError("save_offers: window_days must be positive, once_per_days not negative")
    return policy


def _winback(raw: Any) -> WinbackPolicy:
    if not isinstance(raw, dict):
        raise PolicyError("winback: expected a table")
    known = set(WinbackPolicy.__dataclass_fields__)
    unknown = set(raw) - known
    if unknown:
        raise PolicyError(f"winback: unknown key(s) {sorted(unknown)}; expected {sorted(known)}")
    policy = WinbackPolicy(
        steps=_steps(raw.get("steps", []), "winback.steps"),
        trial_steps=_steps(raw.get("trial_steps", []), "winback.trial_steps"),
        percent_off=float(raw.get("percent_off", 0)),
        duration_months=int(raw.get("duration_months", 0)),
        lost_after_days=float(raw.get("lost_after_days", 14)),
    )
    if not 0 <= policy.percent_off <= 100 or policy.duration_months < 0 or policy.lost_after_days <= 0:
        raise PolicyError("winback: percent_off 0-100, duration_months >= 0, lost_after_days > 0")
    return policy


def load_policy(path: Path, *, day_seconds: float = 86400.0) -> CampaignPolicy:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"campaign policy file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML: {exc}") from None
    return parse_policy(raw, day_seconds=day_seconds, source=str(path.name))
