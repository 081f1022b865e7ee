"""What crosses Temporal: workflow inputs, state, events, activity inputs and results.

One dataclass in, one out (Temporal samples' rule), so fields can be added with
defaults without breaking running histories. No PII here: customers are ids; emails
and names are looked up by activities.
"""


from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lifecycle.contracts.billing import BillingState
from lifecycle.contracts.policy import CampaignPolicy, EmailStep, EmailVariant, UsagePolicy
from lifecycle.contracts.stages import (  # noqa: F401  (the stages, where they always were)
    ACTIVE,
    CANCELED,
    EXPIRED,
    LOST,
    PAST_DUE,
    STAGES,
    TRIALING,
    WON_BACK,
)


def customer_workflow_id(customer_id: str) -> str:
    return f"customer-{customer_id}"


def campaign_workflow_id(customer_id: str, campaign: str, *parts: str) -> str:
    return "/".join([customer_workflow_id(customer_id), campaign, *parts])


# --- the customer entity ----------------------------------------------------------------


@dataclass
class CustomerEvent:
    """Anything that happens to a customer. ``event_id`` is ours, for de-duplication.

    Kinds: signup, activation (data.fact), payment_method_added, campaign_finished
    (data.campaign, data.outcome), and the kinds later subsystems add.
    """

    event_id: str
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class CustomerState:
    customer_id: str
    plan: str
    stage: str = TRIALING
    trial_ends_at: datetime | None = None
    payment_method_on_file: bool = False
    activation_facts: list[str] = field(default_factory=list)
    # campaign name -> child workflow id, while it runs
    campaigns: dict[str, str] = field(default_factory=dict)
    # campaign name -> outcome, once finished
    outcomes: dict[str, str] = field(default_factory=dict)
    # recent event ids (bounded), kept across continue-as-new
    seen_event_ids: list[str] = field(default_factory=list)
    stage_changed_at: datetime | None = None
    runs: int = 1  # how many runs (continue-as-new) this entity has had
    billing: BillingState = field(default_factory=BillingState)
    payment_method_id: str | None = None  # the Stripe card to charge when the trial converts
    marketing_opt_out: bool = False  # unsubscribed from marketing email (a suppression is recorded too)


@dataclass
class CustomerWorkflowInput:
    customer_id: str
    plan: str
    policy: CampaignPolicy
    state: CustomerState | None = None  # set on continue-as-new
    pending: list[CustomerEvent] = field(default_factory=list)  # carried over on continue-as-new
    # continue-as-new after this many events in one run, or when Temporal suggests it
    max_events_per_run: int = 1000
    # signup: begins with the trial and onboarding; stripe: a customer that first
    # appeared in Stripe (e.g. subscribed in the dashboard), whose stage comes from billing
    origin: str = "signup"


# --- campaigns --------------------------------------------------------------------------


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


@dataclass
class CampaignStatus:
    """What a campaign child answers to its ``status`` query."""

    campaign: str
    next_step: str | None
    next_step_at: datetime | None
    done_steps: list[str] = field(default_factory=list)


# --- activities -------------------------------------------------------------------------


@dataclass
class RecordEventInput:
    """A timeline entry; ``kind == 'stage_changed'`` also updates the customer row."""

    customer_id: str
    event_key: str  # unique per workflow step: a retry records nothing twice
    kind: str
    occurred_at: datetime
    from_stage: str | None = None
    to_stage: str | None = None
    campaign: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class SendEmailInput:
    """Ask the email activity to send one email (or to decide that it must wait or skip).

    Fields after ``context`` were added by the email channel; all have defaults so older
    callers and histories keep working.
    """

    customer_id: str
    template: str
    idempotency_key: str  # unique per workflow step
    campaign: str = ""
    step: str = ""
    category: str = "marketing"
    context: dict[str, Any] = field(default_factory=dict)  # facts the template may use, no PII
    # The decision's clock: the workflow passes workflow.now() so that caps and quiet hours
    # follow workflow time (also under the time-skipping test server); None: wall clock.
    now: datetime | None = None
    # A/B test of this step (from its EmailStep); empty: just `template`.
    variants: list[EmailVariant] = field(default_factory=list)
    holdout: float = 0.0
    # The workflow already decided not to send (e.g. "goal met: created_first_project"):
    # record that decision in the customer's timeline and send nothing.
    skip_reason: str | None = None
    # False: never answer "deferred" (send now or skip); for callers that cannot wait.
    allow_defer: bool = True


# SendEmailResult.status values
EMAIL_SENT = "sent"  # handed to the provider now
EMAIL_DUPLICATE = "duplicate"  # this idempotency key was sent before: nothing sent again
EMAIL_SKIPPED = "skipped"  # not sent and never will be for this step (reason says why)
EMAIL_DEFERRED = "deferred"  # not now: ask again at not_before (cap, quiet hours)
EMAIL_HOLDOUT = "holdout"  # the customer is in the step's A/B holdout group: no email
EMAIL_UNCERTAIN = "uncertain"  # an earlier attempt died mid-send: not resent (see docs/email.md)


@dataclass
class SendEmailResult:
    status: str  # sent | duplicate | skipped | deferred | holdout | uncertain
    message_id: int | None = None
    reason: str | None = None
    not_before: datetime | None = None  # set when deferred (UTC)
    variant: str | None = None
    template_version: str | None = None
