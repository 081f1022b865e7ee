"""Every event a customer's workflow hears: its kind, and one dataclass per kind's payload.

The starter (routes, Stripe hand-over, usage crossings) and the campaigns build events
with :func:`customer_event` from a payload; the entity reads them back with
:func:`payload_of`, through the same type. On the wire an event stays
``CustomerEvent(event_id, kind, data)`` with ``data`` a JSON object (times as ISO
strings), exactly as recorded histories carry it: a payload reads old ``data`` too
(unknown keys are ignored, missing ones take the field's default).

No ``from __future__ import annotations`` here: the payload types are read at run time.
"""

import dataclasses
import types
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin

from lifecycle.contracts.customer import CustomerEvent


class EventKind(StrEnum):
    SIGNUP = "signup"
    ACTIVATION = "activation"
    PAYMENT_METHOD_ADDED = "payment_method_added"
    UNSUBSCRIBED = "unsubscribed"
    RESUBSCRIBED = "resubscribed"
    CAMPAIGN_FINISHED = "campaign_finished"
    USAGE_THRESHOLD = "usage_threshold"
    STRIPE_SUBSCRIPTION = "stripe.subscription"
    STRIPE_TRIAL_WILL_END = "stripe.trial_will_end"
    STRIPE_INVOICE_PAID = "stripe.invoice_paid"
    STRIPE_INVOICE_PAYMENT_FAILED = "stripe.invoice_payment_failed"
    STRIPE_INVOICE_ACTION_REQUIRED = "stripe.invoice_action_required"
    STRIPE_INVOICE_UPCOMING = "stripe.invoice_upcoming"
    STRIPE_CHECKOUT_COMPLETED = "stripe.checkout_completed"
    PLAN_CHANGED = "billing.plan_changed"
    PLAN_CHANGE_DROPPED = "billing.plan_change_dropped"
    STRIPE_INVOICE_VOIDED = "stripe.invoice_voided"
    STRIPE_INVOICE_UNCOLLECTIBLE = "stripe.invoice_marked_uncollectible"
    INVOICE_MARKED_PAID = "billing.invoice_marked_paid"
    DEFAULT_CARD = "billing.default_card"
    SAVE_OFFER_EXPIRED = "retention.save_offer_expired"
    PAUSE_ENDED = "retention.pause_ended"


@dataclass(frozen=True)
class EventPayload:
    """Base of every payload: ``KIND`` names the event kind it travels as."""

    KIND: ClassVar[EventKind]
    KEEP_NULLS: ClassVar[bool] = False

    def to_data(self) -> dict[str, Any]:
        """The JSON object carried as ``CustomerEvent.data`` (times as ISO strings).

        A field that is None is left out, as the product's and the campaigns' builders did
        before these types, unless the payload keeps nulls (``KEEP_NULLS``: the Stripe
        hand-overs always sent them). Either way it reads back as None."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None or self.KEEP_NULLS:
                out[f.name] = value.isoformat() if isinstance(value, datetime) else value
        return out

    @classmethod
    def from_data(cls: type["P"], data: dict[str, Any]) -> "P":
        """Read ``data`` as this payload: coerced to the field types, unknown keys ignored."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in data and data[f.name] is not None:
                values[f.name] = _coerce(f.type, data[f.name])
            elif f.name in data:  # an explicit null
                values[f.name] = None if _optional(f.type) else _default(f)
        return cls(**values)


P = TypeVar("P", bound=EventPayload)


def _optional(tp: Any) -> bool:
    return (get_origin(tp) in (Union, types.UnionType)) and type(None) in get_args(tp)


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise TypeError(f"event field {f.name} is required")


def _coerce(tp: Any, value: Any) -> Any:
    if get_origin(tp) in (Union, types.UnionType):
        tp = next(a for a in get_args(tp) if a is not type(None))
    if tp is datetime:
        return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if tp is bool:
        return bool(value)
    if tp in (int, float, str):
        return tp(value)
    return value


# --- from the product ------------------------------------------------------------------


@dataclass(frozen=True)
class Signup(EventPayload):
    KIND = EventKind.SIGNUP


@dataclass(frozen=True)
class Activation(EventPayload):
    KIND = EventKind.ACTIVATION
    fact: str = ""


@dataclass(frozen=True)
class PaymentMethodAdded(EventPayload):
    KIND = EventKind.PAYMENT_METHOD_ADDED
    payment_method_id: str | None = None
    # the key the Stripe hand-over used before it sent payment_method_id (old histories)
    payment_method: str | None = None

    @property
    def card(self) -> str | None:
        return self.payment_method_id or self.payment_method


@dataclass(frozen=True)
class Unsubscribed(EventPayload):
    KIND = EventKind.UNSUBSCRIBED
    source: str = ""


@dataclass(frozen=True)
class Resubscribed(EventPayload):
    KIND = EventKind.RESUBSCRIBED
    source: str = ""


@dataclass(frozen=True)
class UsageThreshold(EventPayload):
    """A usage counter crossed 80 % or 100 % of the plan's limit in a billing period."""

    KIND = EventKind.USAGE_THRESHOLD
    metric: str = ""
    threshold: int = 0
    used: float = 0.0
    limit: float = 0.0
    limit_kind: str = "hard"
    period_start: datetime | None = None
    period_end: datetime | None = None
    plan: str | None = None


# --- from the campaigns ----------------------------------------------------------------


@dataclass(frozen=True)
class CampaignFinished(EventPayload):
    KIND = EventKind.CAMPAIGN_FINISHED
    campaign: str = ""
    outcome: str = ""
    # the run that ended (None: a run from before campaigns named theirs): a campaign
    # started again under the same workflow id ends once per run
    run_id: str | None = None


@dataclass(frozen=True)
class PlanChanged(EventPayload):
    KIND = EventKind.PLAN_CHANGED
    workflow_id: str = ""
    plan: str | None = None
    interval: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class PlanChangeDropped(EventPayload):
    KIND = EventKind.PLAN_CHANGE_DROPPED
    workflow_id: str = ""
    reason: str = ""


@dataclass(frozen=True)
class SaveOfferExpired(EventPayload):
    """The entity's own timer: a save offer's window closed (retention)."""

    KIND = EventKind.SAVE_OFFER_EXPIRED
    offer_id: str = ""


@dataclass(frozen=True)
class PauseEnded(EventPayload):
    """The entity's own timer: an accepted pause is over, billing resumes (retention)."""

    KIND = EventKind.PAUSE_ENDED
    offer_id: str = ""


# --- from Stripe (the webhook hand-over) -----------------------------------------------


@dataclass(frozen=True)
class StripeSubscription(EventPayload):
    KIND = EventKind.STRIPE_SUBSCRIPTION
    KEEP_NULLS = True
    stripe_subscription_id: str | None = None
    stripe_customer_id: str | None = None
    status: str | None = None
    plan: str | None = None
    interval: str | None = None
    amount_cents: int = 0
    cancel_at_period_end: bool = False
    current_period_end: datetime | None = None
    event_type: str = ""
    adopted: bool = False
    stripe_price_id: str | None = None
    # the price bills every interval_count intervals (quarterly: month x3); sent only when
    # not 1, so the usual hand-over stays what histories have seen
    interval_count: int = 1


@dataclass(frozen=True)
class StripeTrialWillEnd(EventPayload):
    KIND = EventKind.STRIPE_TRIAL_WILL_END
    KEEP_NULLS = True
    stripe_subscription_id: str | None = None
    trial_end: datetime | None = None


@dataclass(frozen=True)
class InvoiceFacts(EventPayload):
    """What every invoice event says."""

    KEEP_NULLS = True

    invoice_id: str | None = None
    stripe_subscription_id: str | None = None
    amount_due_cents: int = 0
    attempt_count: int = 0


@dataclass(frozen=True)
class InvoicePaid(InvoiceFacts):
    KIND = EventKind.STRIPE_INVOICE_PAID
    amount_paid_cents: int = 0


@dataclass(frozen=True)
class InvoicePaymentFailed(InvoiceFacts):
    KIND = EventKind.STRIPE_INVOICE_PAYMENT_FAILED
    failure_code: str | None = None
    hard_decline: bool = False
    next_payment_attempt: datetime | None = None


@dataclass(frozen=True)
class InvoiceActionRequired(InvoiceFacts):
    KIND = EventKind.STRIPE_INVOICE_ACTION_REQUIRED
    hosted_invoice_url: str | None = None
    hard_decline: bool = True


@dataclass(frozen=True)
class InvoiceUpcoming(InvoiceFacts):
    KIND = EventKind.STRIPE_INVOICE_UPCOMING
    period_end: datetime | None = None
    next_payment_attempt: datetime | None = None


@dataclass(frozen=True)
class InvoiceVoided(InvoiceFacts):
    KIND = EventKind.STRIPE_INVOICE_VOIDED


@dataclass(frozen=True)
class InvoiceUncollectible(InvoiceFacts):
    KIND = EventKind.STRIPE_INVOICE_UNCOLLECTIBLE


@dataclass(frozen=True)
class InvoiceMarkedPaid(InvoiceFacts):
    """Ops marked the invoice paid out of band (``lifecycle invoice mark-paid``): who and why."""

    KIND = EventKind.INVOICE_MARKED_PAID
    actor: str = ""
    reason: str = ""


@dataclass(frozen=True)
class CheckoutCompleted(EventPayload):
    KIND = EventKind.STRIPE_CHECKOUT_COMPLETED
    KEEP_NULLS = True
    stripe_subscription_id: str | None = None
    stripe_customer_id: str | None = None
    mode: str | None = None


@dataclass(frozen=True)
class DefaultCard(EventPayload):
    """The customer's default card changed, or its expiry did (a Stripe webhook, the
    card-update page). No ``payment_method_id``: the customer has no default card now."""

    KIND = EventKind.DEFAULT_CARD
    payment_method_id: str | None = None
    brand: str = ""
    last4: str = ""
    exp_month: int = 0
    exp_year: int = 0


PAYLOADS: dict[str, type[EventPayload]] = {
    cls.KIND.value: cls
    for cls in (
        Signup, Activation, PaymentMethodAdded, Unsubscribed, Resubscribed, UsageThreshold,
        CampaignFinished, PlanChanged, PlanChangeDropped, StripeSubscription, StripeTrialWillEnd,
        InvoicePaid, InvoicePaymentFailed, InvoiceActionRequired, InvoiceUpcoming, CheckoutCompleted,
        InvoiceVoided, InvoiceUncollectible, InvoiceMarkedPaid,
        DefaultCard,
        SaveOfferExpired, PauseEnded,
    )
}


def customer_event(event_id: str, payload: EventPayload) -> CustomerEvent:
    """The event to send ``customer-{id}``: ``event_id`` is ours, for de-duplication."""
    return CustomerEvent(event_id=event_id, kind=payload.KIND.value, data=payload.to_data())


def payload_of(event: CustomerEvent, expected: type[P]) -> P:
    """Read ``event``'s data as ``expected`` (the type its kind names)."""
    if PAYLOADS.get(event.kind) is not expected:
        raise TypeError(f"event {event.event_id} of kind {event.kind!r} is no {expected.__name__}")
    return expected.from_data(event.data)
