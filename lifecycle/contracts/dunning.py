"""What crosses Temporal for dunning (``customer-{id}/dunning/{first-invoice-id}``): its
input, the signals the entity sends it, its updates' arguments, and the activities' data.

No PII: customers are ids, invoices are Stripe ids with amounts. New fields get defaults
so running histories still decode. No ``from __future__ import annotations`` here.
"""

from dataclasses import dataclass
from datetime import datetime

from lifecycle.contracts.policy import DunningPolicy

CAMPAIGN = "dunning"

# LIFECYCLE_DUNNING_RETRY_MODE
ENGINE = "engine"  # the engine charges the open invoices on the policy's retry days
STRIPE = "stripe"  # Stripe's Smart Retries charge; the engine never does
RETRY_MODES = (ENGINE, STRIPE)

# An invoice's state inside dunning
OPEN = "open"
PAID = "paid"
VOIDED = "voided"
UNCOLLECTIBLE = "uncollectible"

# How an invoice left dunning (the finance report's paths); a retry is "retry_<n>"
BY_CARD_UPDATE = "card_update"  # the customer paid (a new card, the card page, the hosted invoice)
BY_MANUAL = "manual"  # ops marked it paid out of band
BY_STRIPE = "stripe"  # Stripe's own retry (retry mode stripe)
BY_VOID = "voided"
BY_UNCOLLECTIBLE = "uncollectible"
# what the entity says of an invoice.paid it heard; the dunning names the path (card update
# or Stripe's retry, by retry mode)
BY_CUSTOMER = "paid"

# The dunning's terminal states (the stages in between come from the policy)
RECOVERED = "recovered"  # every invoice paid (or closed): access back, stage active
CLOSED = "closed"  # no invoice left open, none paid (voided / uncollectible)
CANCELED = "canceled"  # end action cancel
UNPAID = "unpaid"  # end action unpaid: still suspended, waiting to be paid
CANCELING = "canceling"  # end action cancel taken, Stripe has not confirmed it yet (its call fails)
LEFT_PAST_DUE = "left_past_due"  # end action leave_past_due


@dataclass
class DunningInvoice:
    """One invoice in dunning, as the failures told it."""

    invoice_id: str
    amount_due_cents: int = 0
    currency: str = "usd"
    failed_at: datetime | None = None
    decline_code: str | None = None
    hard_decline: bool = False  # never retried: the card must change
    action_url: str | None = None  # 3-D Secure: the hosted invoice page to authenticate on
    requires_action: bool = False  # 3-D Secure: never retried, the customer authenticates
    attempt_count: int = 0
    next_payment_attempt: datetime | None = None  # Stripe's next retry (retry mode stripe)
    stripe_gave_up: bool = False  # retry mode stripe: a failure without a next attempt
    status: str = OPEN
    closed_how: str | None = None
    closed_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.status == OPEN


@dataclass
class DunningInput:
    customer_id: str
    first_invoice: DunningInvoice
    stripe_subscription_id: str | None = None
    cause: str = ""  # the event that started it (ids only)


@dataclass
class DunningSetup:
    """What the dunning reads when it begins (an activity: the policy file and the setting as
    they are now, and the invoices the mirror has open)."""

    policy: DunningPolicy
    retry_mode: str = ENGINE
    day_seconds: float = 86400.0
    # the mirror's status of the first invoice (None: not mirrored): a failure heard after
    # the invoice was paid or voided begins no dunning
    first_invoice_status: str | None = None


@dataclass
class InvoiceFailed:
    """Signal: a payment failed (a second invoice joining, or the same one failing again)."""

    event_id: str
    invoice: DunningInvoice
    requires_action: bool = False  # invoice.payment_action_required


@dataclass
class InvoiceClosed:
    """Signal: an invoice was paid, voided or marked uncollectible (``how``: a BY_* path)."""

    event_id: str
    invoice_id: str
    status: str  # PAID | VOIDED | UNCOLLECTIBLE
    how: str
    actor: str | None = None  # manual payments: who
    reason: str | None = None


@dataclass
class CardChanged:
    """Signal: a payment method was added or became the default (``payment_method.attached``,
    ``setup_intent.succeeded``, ``customer.updated``, the product). Retry mode engine: the
    open invoices are retried at once if it is the card they are charged with, once per card."""

    event_id: str
    payment_method_id: str


@dataclass
class SubscriptionEnded:
    """Signal: Stripe itself ended the subscription (``customer.subscription.deleted``:
    canceled, ``customer.subscription.updated`` to unpaid), e.g. by its "if all retries
    fail" setting: the dunning ends with it (nothing is canceled twice)."""

    event_id: str
    status: str  # CANCELED | UNPAID
    stripe_subscription_id: str | None = None


@dataclass
class ExtendGrace:
    days: int
    reason: str


@dataclass
class RetryNow:
    reason: str


@dataclass
class DunningSnapshot:
    """The dunning as the API shows it (``GET /v1/customers/{id}``'s ``dunning``), saved to
    the database at every change so it reads it while Temporal is down."""

    customer_id: str
    workflow_id: str
    state: str
    since: datetime
    started_at: datetime
    retry_mode: str
    suspended: bool
    invoices: list[DunningInvoice]
    next_retry_at: datetime | None = None
    next_step: str | None = None
    next_step_at: datetime | None = None
    ended: bool = False
    recovered_how: str | None = None
    end_action: str | None = None  # the end action taken, once taken
    # the run (its first-execution run id) when its keys carry it (patches.DUNNING_KEYS_BY_RUN):
    # each run of the same workflow id keeps its own rows; "" before
    run_id: str = ""
    # the end action's Stripe call fails (retried with backoff): its last error, since when
    end_action_error: str | None = None
    end_action_failing_since: datetime | None = None


@dataclass
class OpenInvoicesInput:
    customer_id: str
