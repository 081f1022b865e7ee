"""The campaign children of a customer's entity: their inputs and the status they answer.

One dataclass in per campaign; new fields get defaults so running histories still decode.
"""


from dataclasses import dataclass, field
from datetime import datetime

from lifecycle.contracts.policy import EmailStep, UsagePolicy
from lifecycle.contracts.tiers import Tiers


@dataclass
class TrialInput:
    customer_id: str
    plan: str
    trial_ends_at: datetime
    reminders: list[EmailStep]
    payment_method_on_file: bool = False
    day_seconds: float = 86400.0


@dataclass
class OnboardingInput:
    customer_id: str
    steps: list[EmailStep]
    activation_facts: list[str] = field(default_factory=list)
    day_seconds: float = 86400.0


@dataclass
class UsageNudgeInput:
    """A usage threshold crossed (``usage_threshold`` event): which email the child sends."""

    customer_id: str
    metric: str
    threshold: int  # 80 | 100
    used: float
    limit: float
    limit_kind: str  # hard | soft
    period_start: datetime
    plan: str  # the plan whose limit was crossed
    stage: str  # the customer's stage when it was crossed (trialing gets the trial version)
    policy: UsagePolicy = field(default_factory=UsagePolicy)
    period_end: datetime | None = None
    # the entity's snapshot of the tiers (names, prices, limits) for the email; None: a
    # nudge from an entity without one (the catalog is read)
    tiers: Tiers | None = None
    paused: bool = False  # started while ops paused marketing: a marketing nudge waits for resume


@dataclass
class CampaignStatus:
    """What a campaign child answers to its ``status`` query."""

    campaign: str
    next_step: str | None
    next_step_at: datetime | None
    done_steps: list[str] = field(default_factory=list)
