"""Ops controls and why-waiting: what crosses Temporal when support asks "where is this
customer, why, and what happens next?" and acts on one customer.

The protocol every campaign child follows (``workflows/controls.py`` implements it once;
a campaign inherits :class:`~workflows.controls.ControlledCampaign` and calls its helper):

- query ``waiting`` → :class:`CampaignWaiting` (the step it is on, what it waits for,
  what comes next);
- signals ``pause`` / ``resume`` (marketing steps hold while paused; a step whose time
  passed meanwhile goes out at resume, once) and ``skip_step(step)`` (the waiting step is
  skipped and recorded).

The entity (``customer-{id}``) answers ``waiting`` with :class:`WhyWaiting` (its campaigns
and their ids) and takes every action as the validated update ``ops_action``
(:class:`OpsAction`); the rules that refuse an action are :func:`action_refusal` and
:func:`step_refusal`, written once here and used by the workflow's validator and the
starter side.

No ``from __future__ import annotations``: these dataclasses cross Temporal.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# --- message names (senders that cannot import a campaign's class name them by these) ---

WAITING_QUERY = "waiting"
PAUSE_SIGNAL = "pause"
RESUME_SIGNAL = "resume"
SKIP_STEP_SIGNAL = "skip_step"
OPS_ACTION_UPDATE = "ops_action"
# a campaign child tells its entity what it waits for now (the entity's Waits / NextStepAt)
CAMPAIGN_WAIT_SIGNAL = "campaign_wait"
# the dunning child's updates, by name (the payment-recovery campaign defines them)
DUNNING_CAMPAIGN = "dunning"
EXTEND_GRACE_UPDATE = "extend_grace"
RETRY_NOW_UPDATE = "retry_now"

# --- what a campaign waits for (Waiting.kind; also the WaitingFor search attribute) ------

WAIT_TIMER = "timer"  # a durable timer until `until` (the step's time)
WAIT_SIGNAL = "signal"  # an event from outside, e.g. a payment (`detail` names it)
WAIT_QUIET_HOURS = "quiet_hours"  # marketing email held for the customer's quiet hours until `until`
WAIT_FREQUENCY_CAP = "frequency_cap"  # marketing email held by the frequency cap until `until`
WAIT_PAUSED = "paused"  # ops paused marketing; the step goes out at resume
WAIT_ACTIVITY = "activity"  # an activity running or retrying (the starter adds attempt and error)
WAIT_NOTHING = "nothing"  # finished, or between steps
WAIT_KINDS = (
    WAIT_TIMER, WAIT_SIGNAL, WAIT_QUIET_HOURS, WAIT_FREQUENCY_CAP, WAIT_PAUSED, WAIT_ACTIVITY, WAIT_NOTHING,
)

# --- actions -----------------------------------------------------------------------------

PAUSE = "pause"
RESUME = "resume"
CANCEL_CAMPAIGN = "cancel-campaign"
SKIP_STEP = "skip-step"
EXTEND_GRACE = "extend-grace"
RETRY_NOW = "retry-now"
RESEND = "resend"
ACTIONS = (PAUSE, RESUME, CANCEL_CAMPAIGN, SKIP_STEP, EXTEND_GRACE, RETRY_NOW, RESEND)

# Campaigns that carry billing (they move the stage or money): never paused or cancelled
# by an ops action; their email steps may still be skipped.
BILLING_CAMPAIGNS = frozenset({"trial", DUNNING_CAMPAIGN, "plan-change"})


@dataclass
class Waiting:
    """What a campaign waits for now."""

    kind: str  # one of WAIT_KINDS
    until: datetime | None = None  # timer, quiet hours, cap: when it ends (UTC)
    detail: str = ""  # the signal awaited, the deferral's reason, the activity's name
    # a retrying activity (filled by the starter from Temporal's describe of the workflow:
    # workflow code cannot see its own pending activities)
    attempt: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None


@dataclass
class CampaignWaiting:
    """One running campaign's answer to the ``waiting`` query."""

    campaign: str
    workflow_id: str
    step: str | None  # the step it is on (None: finished, or not known yet)
    waiting: Waiting
    next_step: str | None = None  # what comes after this step
    next_step_at: datetime | None = None
    paused: bool = False
    marketing: bool = True  # pause applies to this step
    skippable: bool = True  # an email step; a billing step (the trial's end, a downgrade) is not
    done_steps: list[str] = field(default_factory=list)
    skipped_steps: list[str] = field(default_factory=list)  # skipped by ops


@dataclass
class WhyWaiting:
    """The entity's answer to ``waiting``: its campaigns (each answers for itself) and the
    billing child it owns (a pending downgrade)."""

    customer_id: str
    stage: str
    paused: bool
    campaigns: list[CampaignWaiting] = field(default_factory=list)


@dataclass
class CampaignWait:
    """A campaign child's report to its entity (signal ``campaign_wait``): what it waits
    for now and until when. The entity keeps one per child run (:func:`wait_key`: by
    workflow id and run id) and upserts its own ``Waits`` and ``NextStepAt`` from them
    (:func:`entity_waits`), so one visibility query on the entities lists customers by
    what their campaigns wait for."""

    campaign: str
    workflow_id: str
    kind: str  # one of WAIT_KINDS; WAIT_NOTHING: the child has no step left
    until: datetime | None = None
    # the reporting run (None: a child started before reports named their run)
    run_id: str | None = None


def wait_key(workflow_id: str, run_id: str | None) -> str:
    """The entity's key for one child run's report: ``{workflow id}@{run id}`` (a run id
    is a UUID: no ``@``), the workflow id alone for a report that names no run."""
    return f"{workflow_id}@{run_id}" if run_id else workflow_id


def entity_waits(waits: list[CampaignWait]) -> tuple[list[str], datetime | None]:
    """The entity's ``Waits`` (each kind waited for, and ``campaign:kind``) and its
    ``NextStepAt`` (the earliest time one of its campaigns acts; None: none waits on a
    time) from its children's reports."""
    live = [w for w in waits if w.kind not in (WAIT_NOTHING, WAIT_ACTIVITY)]
    names = sorted({w.kind for w in live} | {f"{w.campaign}:{w.kind}" for w in live})
    times = [w.until for w in live if w.until is not None]
    return names, min(times) if times else None


@dataclass
class OpsAction:
    """One action on one customer (the entity's ``ops_action`` update)."""

    action: str  # one of ACTIONS
    reason: str
    actor: str  # the API key's name, or --actor / the OS user for the CLI
    action_id: str  # ours: the audit row's key and the update's id
    campaign: str | None = None  # cancel-campaign, skip-step
    step: str | None = None  # skip-step (the step the caller saw waiting), resend
    days: int | None = None  # extend-grace
    message_id: int | None = None  # resend: the email row to send again
    requested_at: datetime | None = None
    # set by the starter when the dunning child already took the action (extend-grace,
    # retry-now): the entity records it
    applied: dict[str, Any] = field(default_factory=dict)


@dataclass
class OpsActionResult:
    action: str
    done: str  # what happened, in words
    campaigns: list[str] = field(default_factory=list)  # the campaigns it reached
    paused: bool = False


@dataclass
class AuditEntryInput:
    """An audit row (append-only) and its timeline entry, written once by action id."""

    action_id: str
    customer_id: str
    action: str
    actor: str
    reason: str
    occurred_at: datetime
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class ResendEmailInput:
    customer_id: str
    message_id: int
    idempotency_key: str  # new, per action: the resend is a new email
    now: datetime | None = None


def deferral_kind(reason: str | None) -> str:
    """Which marketing rule held an email, from the email activity's deferral reason (quiet
    hours push the time last, so they win when both apply)."""
    return WAIT_QUIET_HOURS if reason and "quiet hours" in reason else WAIT_FREQUENCY_CAP


def action_refusal(
    action: OpsAction, *, running: dict[str, str], paused: bool
) -> str | None:
    """Why the entity refuses ``action`` (None: it fits). ``running``: campaign → workflow id."""
    listing = ", ".join(sorted(running)) or "none"
    if action.action not in ACTIONS:
        return f"unknown action {action.action!r}; expected one of {', '.join(ACTIONS)}"
    if not action.reason.strip():
        return "a reason is required"
    if action.action == PAUSE and paused:
        return "marketing campaigns are already paused"
    if action.action == RESUME and not paused:
        return "nothing is paused"
    if action.action in (CANCEL_CAMPAIGN, SKIP_STEP):
        if not action.campaign or action.campaign not in running:
            return f"unknown campaign {action.campaign!r}; running: {listing}"
        if action.action == CANCEL_CAMPAIGN and action.campaign in BILLING_CAMPAIGNS:
            return f"{action.campaign} carries billing and cannot be cancelled; skip its steps instead"
    if action.action in (EXTEND_GRACE, RETRY_NOW):
        if DUNNING_CAMPAIGN not in running:
            return "no dunning is running"
        if action.action == EXTEND_GRACE and (action.days is None or action.days <= 0):
            return "days must be a positive number"
    if action.action == RESEND and (action.message_id is None or not action.step):
        return "resend needs the step and the email to send again"
    return None


def step_refusal(action: OpsAction, waiting: CampaignWaiting) -> str | None:
    """Why ``skip-step`` does not fit the campaign's answer (None: it fits)."""
    if waiting.step is None or waiting.waiting.kind == WAIT_NOTHING:
        return f"{waiting.campaign} is not waiting on a step"
    if action.step and action.step != waiting.step:
        return f"{waiting.campaign} is waiting on {waiting.step!r}, not {action.step!r}"
    if not waiting.skippable:
        return f"{waiting.step!r} is a billing step of {waiting.campaign}; it cannot be skipped"
    return None
