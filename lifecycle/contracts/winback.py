"""What crosses Temporal for retention: the cancellation save offer, the win-back
campaign's input, the entity's retention state and the records analytics reads.

No ``from __future__ import annotations``: these dataclasses cross Temporal. New fields
get defaults so running histories still decode. No PII: a cancellation's free-text
comment is written by the HTTP API straight to the database, never into a history.
"""

from dataclasses import dataclass, field
from datetime import datetime

from lifecycle.contracts.policy import EmailStep

# Why a customer cancels (``DELETE /v1/customers/{id}/subscription?reason=...``).
CANCEL_REASONS = ("too_expensive", "missing_features", "not_using", "switched", "temporary", "other")

# What a save offer gives.
OFFER_PAUSE = "pause"  # no invoices for N months (Stripe pause_collection), then billing resumes
OFFER_DOWNGRADE = "downgrade"  # the next cheaper tier, from the period end
OFFER_COUPON = "coupon"  # percent_off for N months
OFFER_KINDS = (OFFER_PAUSE, OFFER_DOWNGRADE, OFFER_COUPON)

# SaveOffer.status
OFFER_OPEN = "open"
OFFER_ACCEPTED = "accepted"
OFFER_DECLINED = "declined"
OFFER_EXPIRED = "expired"
OFFER_WITHDRAWN = "withdrawn"  # the customer canceled without a reason while it was open

# The win-back campaign's outcomes (CampaignFinished.outcome)
WINBACK_REACTIVATED = "reactivated"
WINBACK_UNSUBSCRIBED = "unsubscribed"
WINBACK_BOUNCED = "bounced"
WINBACK_LOST = "lost"

# The variants of the win-back emails
CHURNED = "churned"  # a subscription that ended
TRIAL = "trial"  # a trial that expired: "continue where you left off"

# A policy "month" for pauses and coupons, in policy days.
MONTH_DAYS = 30


@dataclass
class SaveOffer:
    """One offer made in answer to a cancellation request."""

    offer_id: str
    request_id: str  # the cancellation request it answers
    reason: str
    kind: str  # pause | downgrade | coupon
    made_at: datetime
    expires_at: datetime  # no answer by then: the cancellation goes ahead
    months: int = 0  # pause / coupon length
    percent_off: float = 0.0  # coupon
    plan: str | None = None  # downgrade: the cheaper tier
    at_once: bool = False  # what the cancellation asked for, should it go ahead
    status: str = OFFER_OPEN
    # Stripe was set to cancel at the period end when the offer was made (a renewal inside
    # the window ends the subscription instead of charging); accepting undoes it
    holds_cancel: bool = False
    decided_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.status == OFFER_OPEN


@dataclass
class WinbackState:
    """The entity's retention facts (kept across continue-as-new, shown by GET /v1/customers/{id})."""

    offer: SaveOffer | None = None  # the latest save offer (open or decided)
    last_offer_at: datetime | None = None  # at most one offer per policy period
    paused_until: datetime | None = None  # an accepted pause: billing resumes then
    paused_access: str | None = None  # what the pause leaves of access (keep | read_only | none)
    winbacks: int = 0  # win-back campaigns started (the n of customer-{id}/winback/{n})
    winback_variant: str | None = None  # churned | trial, of the latest
    winback_percent_off: float = 0.0  # the latest campaign's offer, applied on reactivation
    winback_months: int = 0
    reactivated_at: datetime | None = None


@dataclass
class OfferAnswer:
    """The argument of the entity's ``accept_save_offer`` / ``decline_save_offer`` updates."""

    offer_id: str
    request_id: str  # ours, per HTTP request: the Stripe idempotency keys derive from it


@dataclass
class ReactivateRequest:
    """The argument of the entity's ``reactivate`` update (the reactivation page's POST)."""

    request_id: str
    winback: int = 0  # the campaign whose link was followed (its offer applies); 0: none


@dataclass
class WinbackInput:
    customer_id: str
    n: int
    variant: str  # churned | trial
    plan: str
    steps: list[EmailStep]
    percent_off: float = 0.0
    duration_months: int = 0
    lost_after_days: float = 14.0  # after the last email with no answer: lost
    day_seconds: float = 86400.0
    # what the emails say (lifecycle/contracts/coupons.py); "": an entity from before
    # (the template's own monthly wording)
    interval: str = "month"
    price: str = ""  # "$49/month", "$490/year"
    offer: str = ""  # "30% off for 3 months", "$36.75 off your next invoice (30% off 3 months)"


@dataclass
class PauseInput:
    customer_id: str
    stripe_subscription_id: str
    idempotency_key: str
    resumes_at: datetime | None = None  # None: resume now (clear the pause)


@dataclass
class CancellationRecord:
    """A cancellation request's outcome (the ``cancellation_requests`` row)."""

    customer_id: str
    request_id: str
    reason: str | None
    outcome: str  # offered | saved | canceled | cancel_scheduled
    at: datetime
    offer_id: str | None = None


@dataclass
class AccessPauseRecord:
    """A pause's access, as the usage check reads it (the ``access_pauses`` row)."""

    customer_id: str
    offer_id: str
    access: str  # keep | read_only | none
    at: datetime  # the pause began (or, ``ended``, ended)
    resumes_at: datetime
    ended: bool = False


@dataclass
class SaveOfferRecord:
    customer_id: str
    offer: SaveOffer
    event: str  # made | accepted | declined | expired


@dataclass
class ReactivationRecord:
    """A win-back (the ``reactivations`` row analytics counts reactivation MRR from)."""

    customer_id: str
    key: str
    at: datetime
    plan: str
    interval: str
    mrr_cents: int
    from_stage: str
    winback: int = 0
    coupon_id: str | None = None
    percent_off: float = 0.0
    duration_months: int = 0
    stripe_subscription_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
