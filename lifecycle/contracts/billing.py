"""What crosses Temporal for billing: Stripe activity inputs and results, subscription requests.

One dataclass in, one out; new fields get defaults so running histories still decode.
No PII: customers are ids, Stripe objects are ids.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lifecycle.contracts.stages import is_live
from lifecycle.contracts.winback import SaveOffer

INTERVALS = ("month", "year")

# Outcomes the workflow decides on (business results, not errors).
OUTCOME_ACTIVE = "active"  # subscription billing, invoice paid
OUTCOME_PAYMENT_FAILED = "payment_failed"  # subscription incomplete / invoice open after a decline
OUTCOME_NO_PAYMENT_METHOD = "no_payment_method"
OUTCOME_UNCHANGED = "unchanged"  # already in the asked-for state
OUTCOME_CANCELED = "canceled"
OUTCOME_CANCEL_SCHEDULED = "cancel_scheduled"  # cancels at period end
OUTCOME_CHANGE_SCHEDULED = "change_scheduled"  # downgrade applies at period end
OUTCOME_CHANGE_DROPPED = "change_dropped"  # the subscription ended before the downgrade applied
OUTCOME_SAVE_OFFERED = "save_offered"  # a cancellation answered with an offer; nothing canceled yet


@dataclass
class BillingState:
    """What the customer's workflow knows of its subscription (kept across continue-as-new)."""

    stripe_subscription_id: str | None = None
    status: str | None = None  # Stripe's status: active, past_due, canceled, incomplete, ...
    plan: str | None = None
    interval: str | None = None
    interval_count: int = 1  # billed every interval_count intervals (quarterly: month x3)
    cancel_at_period_end: bool = False
    current_period_end: datetime | None = None
    pending_plan: str | None = None  # a downgrade waiting for the period end
    pending_interval: str | None = None
    pending_change_workflow: str | None = None
    imported: bool = False  # a customer from Stripe whose details were fetched
    trial_told: bool = False  # the running trial campaign heard that the customer subscribed
    # the subscription as last published to the product (subscription.changed), to publish changes only
    published: dict[str, Any] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return bool(self.stripe_subscription_id) and is_live(self.status)

    def clear_pending_change(self) -> None:
        """No downgrade waits for the period end any more."""
        self.pending_plan = self.pending_interval = self.pending_change_workflow = None


@dataclass
class EnsureCustomerInput:
    customer_id: str
    idempotency_key: str


@dataclass
class EnsureCustomerResult:
    stripe_customer_id: str
    created: bool
    has_payment_method: bool


@dataclass
class StartSubscriptionInput:
    customer_id: str
    plan: str
    idempotency_key: str  # derived from the workflow and step
    interval: str = "month"
    coupon: str | None = None  # e.g. a win-back offer
    payment_method_id: str | None = None  # attach this card first (e.g. from Stripe Elements)
    # True: that card becomes the default only for a customer with none (the trial
    # conversion: the customer's chosen default stays); False: it becomes the default
    keep_default: bool = False


@dataclass
class SubscriptionResult:
    """The subscription after an activity, as the API answers it."""

    outcome: str
    stripe_subscription_id: str | None = None
    status: str | None = None
    plan: str | None = None
    interval: str | None = None
    amount_cents: int = 0
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False
    latest_invoice_id: str | None = None
    latest_invoice_status: str | None = None
    reason: str | None = None
    pending_plan: str | None = None  # a downgrade waiting for the period end
    pending_interval: str | None = None
    save_offer: SaveOffer | None = None  # a cancellation answered with an offer (outcome save_offered)


@dataclass
class ChangePlanInput:
    customer_id: str
    stripe_subscription_id: str
    plan: str
    interval: str
    idempotency_key: str
    # always_invoice: upgrade now and charge the prorated difference at once;
    # none: switch without proration (a downgrade applied at the period end)
    proration_behavior: str = "always_invoice"


@dataclass
class CancelInput:
    customer_id: str
    stripe_subscription_id: str
    idempotency_key: str
    at_period_end: bool = True


@dataclass
class ReactivateInput:
    customer_id: str
    idempotency_key: str
    stripe_subscription_id: str | None = None
    plan: str | None = None  # needed when the old subscription has ended
    interval: str = "month"
    coupon: str | None = None
    # only take back a cancel at period end: a subscription that has ended is refused
    # (SubscriptionEnded), never replaced by a new one (a save offer's hold released)
    undo_only: bool = False


@dataclass
class RetryInvoiceInput:
    customer_id: str
    invoice_id: str
    idempotency_key: str
    # charge only if this is the payment method Stripe would charge the invoice with (a
    # retry for a new default card); otherwise the outcome is NOT_CHARGED_CARD, nothing paid
    payment_method_id: str | None = None


# RetryInvoiceResult.outcome when the payment method asked for is not the one the invoice
# would be charged with (the card was attached but is not, or not yet, the default)
NOT_CHARGED_CARD = "not_default"
# RetryInvoiceResult.outcome when the card the invoice would be charged with hard-declined
# its last attempt on this invoice (expired, lost, stolen...) and has not changed since:
# nothing is charged (a hard decline, failure_code the card's last decline code)
CARD_HARD_DECLINED = "card_hard_declined"


@dataclass
class RetryInvoiceResult:
    outcome: str  # paid | declined | requires_action | no_payment_method | not_payable | not_default | card_hard_declined
    invoice_status: str
    amount_due_cents: int = 0
    failure_code: str | None = None
    failure_message: str | None = None
    hard_decline: bool = False  # the card must be updated; retrying cannot help
    # paid: by this step's charge (now, or by an earlier attempt of the same step), not by
    # someone else before it (the customer, ops, Stripe)
    charged: bool = False
    hosted_invoice_url: str | None = None  # requires_action: where the customer authenticates


@dataclass
class CouponInput:
    customer_id: str
    idempotency_key: str
    percent_off: float | None = None
    amount_off_cents: int | None = None
    currency: str = "usd"
    duration: str = "once"  # once | repeating | forever
    duration_in_months: int | None = None
    apply_to_subscription: str | None = None  # apply now to this live subscription
    # An offer ("percent_off % off for offer_months months", 0: the first month): the
    # activity makes the terms right for the interval of the price it discounts (the
    # subscription's, else ``plan`` / ``interval``'s) by lifecycle.contracts.coupons;
    # ``duration``, ``duration_in_months`` and ``amount_off_cents`` are then not used.
    offer_months: int | None = None
    plan: str | None = None
    interval: str | None = None


@dataclass
class CouponResult:
    coupon_id: str
    applied_to: str | None = None
    duration: str | None = None  # what was created (once | repeating | forever)
    percent_off: float | None = None
    amount_off_cents: int | None = None
    currency: str | None = None


@dataclass
class ImportCustomerInput:
    """Fill in a customer that came from Stripe (dashboard) rather than from signup."""

    customer_id: str
    stripe_customer_id: str


@dataclass
class ImportCustomerResult:
    email_known: bool


@dataclass
class SubscriptionRequest:
    """The argument of CustomerWorkflow's ``change_subscription`` update (from the HTTP API)."""

    action: str  # create | change | cancel
    request_id: str  # ours, unique per HTTP request; the idempotency key derives from it
    plan: str | None = None
    interval: str | None = None
    at_once: bool = False  # cancel now instead of at the period end
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class PlanChangeInput:
    """A downgrade that waits for the period end in its own child workflow."""

    customer_id: str
    stripe_subscription_id: str
    plan: str
    interval: str
    apply_at: datetime
    request_id: str
