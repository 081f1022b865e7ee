"""The customer's entity workflow (``customer-{id}``): its events, its state and its input.

One dataclass in, one out (Temporal samples' rule), so fields can be added with
defaults without breaking running histories. No PII here: customers are ids; emails
and names are looked up by activities. What each event kind carries is in
:mod:`lifecycle.contracts.events`.
"""


from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lifecycle.contracts.billing import BillingState
from lifecycle.contracts.cards import CardOnFile
from lifecycle.contracts.growth import GrowthState
from lifecycle.contracts.ops import CampaignWait
from lifecycle.contracts.policy import CampaignPolicy
from lifecycle.contracts.stages import TRIALING
from lifecycle.contracts.tiers import Tiers
from lifecycle.contracts.winback import WinbackState

# The entity's one signal: every event for the customer (senders that cannot import the
# workflow, its own campaign children, name it by this).
EVENT_SIGNAL = "event"


@dataclass
class CustomerEvent:
    """Anything that happens to a customer. ``event_id`` is ours, for de-duplication.

    ``kind`` is an :class:`~lifecycle.contracts.events.EventKind`; ``data`` its payload as
    a JSON object (build with ``customer_event``, read with ``payload_of``).
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
    card: CardOnFile | None = None  # the default card as Stripe last told us (expiry reminders)
    # renewal reminders, expansion offers, team promotion: what the entity remembers of them
    retention: GrowthState = field(default_factory=GrowthState)
    paused: bool = False  # ops paused the marketing campaigns (lifecycle/contracts/ops.py)
    held_nudges: list[str] = field(default_factory=list)  # usage nudges started paused: told at resume
    winback: WinbackState = field(default_factory=WinbackState)  # save offers, win-back
    # what each running campaign child last said it waits for (by workflow id): the
    # entity's Waits / NextStepAt search attributes (workflows/ops.py)
    waits: dict[str, CampaignWait] = field(default_factory=dict)
    # the published policy version (policy and tiers) the entity decides on; None: the
    # policy and tiers its input carried (lifecycle/contracts/policy_versions.py)
    policy_version: int | None = None


@dataclass
class CustomerWorkflowInput:
    customer_id: str
    plan: str
    # the policy as the starter loaded it; None in a run continued with a published version
    # (state.policy_version), which the run loads first
    policy: CampaignPolicy | None = None
    state: CustomerState | None = None  # set on continue-as-new
    pending: list[CustomerEvent] = field(default_factory=list)  # carried over on continue-as-new
    # continue-as-new after this many events in one run, or when Temporal suggests it
    max_events_per_run: int = 1000
    # signup: begins with the trial and onboarding; stripe: a customer that first
    # appeared in Stripe (e.g. subscribed in the dashboard), whose stage comes from billing
    origin: str = "signup"
    # the tiers as they were at the start (ranks, prices, limits), like the policy: what the
    # workflow decides on (upgrade now or downgrade later, the usage emails). None in the
    # input of an entity started before the snapshot existed: that one reads the catalog;
    # None too in a run continued with a published version (which carries the tiers).
    tiers: Tiers | None = None
