"""Policy for payment recovery: the ``[dunning]`` section (stages, retries, end action,
hard declines, notices) and pre-dunning's ``[card_expiry]``.

No ``from __future__ import annotations``: these dataclasses cross Temporal.
"""

from dataclasses import dataclass, field
from typing import Any

from lifecycle.contracts.policy_steps import (
    EmailStep,
    PolicyError,
    parse_one_step,
    parse_steps,
    table,
)

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


def _dunning_step(raw: Any, where: str) -> EmailStep | None:
    """A dunning email: one step, always transactional (it is about the customer's account)."""
    step = parse_one_step(raw, where)
    if step is not None and step.category != "transactional":
        raise PolicyError(f"{where}.category: dunning email is transactional")
    return step


def parse_dunning(raw: Any) -> DunningPolicy:
    """The ``[dunning]`` table; every refusal names the key."""
    table(raw, "dunning", {"stages", "retry_days", "end_day", "end_action", "hard_declines", "notices"})
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


def parse_card_expiry(raw: Any) -> CardExpiryPolicy:
    if raw is None:
        return CardExpiryPolicy()
    if not isinstance(raw, dict) or set(raw) - {"reminders", "skip_stages"}:
        raise PolicyError("card_expiry: expected a table with reminders and skip_stages")
    try:
        reminders = parse_steps(raw.get("reminders", []), "card_expiry.reminders")
    except (TypeError, ValueError, AttributeError) as exc:
        raise PolicyError(f"card_expiry: {exc}") from None
    for r in reminders:
        if r.days_before_end <= 0:
            raise PolicyError(f"card_expiry.reminders.{r.name}: days_before_end must be positive")
    stages = raw.get("skip_stages", CardExpiryPolicy().skip_stages)
    if not isinstance(stages, list) or not all(isinstance(v, str) for v in stages):
        raise PolicyError("card_expiry.skip_stages: expected a list of stage names")
    return CardExpiryPolicy(reminders=reminders, skip_stages=list(stages))
