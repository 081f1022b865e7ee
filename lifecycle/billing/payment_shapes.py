"""Payments and cards as Stripe shapes them: payment intents and charges, the card a
invoice is charged with, hard declines, card details for the mirror."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lifecycle.billing.shapes import (
    ShapeError,
    _id,
    _int,
    _require,
    parse_customer,
)


@dataclass(frozen=True)
class PaymentRec:
    id: str  # pi_... or ch_...
    object: str  # payment_intent | charge
    customer: str | None
    invoice: str | None
    amount_cents: int
    currency: str
    status: str  # succeeded | failed | processing | requires_action | ...
    failure_code: str | None
    failure_message: str | None
    created: int
    payment_intent: str | None = None  # for a charge: its payment intent, if any
    payment_method: str | None = None  # the payment method attempted, if known



def payment_method_charged(
    invoice: Mapping[str, Any], subscription: Mapping[str, Any] | None, customer: Mapping[str, Any] | None
) -> str | None:
    """The payment method Stripe charges an invoice with, in Stripe's own order: the
    invoice's ``default_payment_method`` (or ``default_source``), then the subscription's,
    then the customer's ``invoice_settings.default_payment_method`` (or ``default_source``).
    None: there is nothing to charge. Never "the newest card attached"."""
    for obj in (invoice, subscription or {}):
        found = _id(obj.get("default_payment_method")) or _id(obj.get("default_source"))
        if found:
            return found
    return parse_customer(customer).default_payment_method if customer else None


def parse_payment(obj: Mapping[str, Any]) -> PaymentRec:
    """A payment intent or a charge."""
    pid = str(_require(obj, "id", "payment"))
    kind = obj.get("object") or ("charge" if pid.startswith("ch_") else "payment_intent")
    if kind == "charge":
        status = str(obj.get("status") or "pending")
        failure_code, failure_message = obj.get("failure_code"), obj.get("failure_message")
        payment_intent = _id(obj.get("payment_intent"))
    else:
        kind = "payment_intent"
        err = obj.get("last_payment_error") or {}
        status = str(obj.get("status") or "processing")
        if err and status == "requires_payment_method":
            status = "failed"
        failure_code, failure_message = err.get("decline_code") or err.get("code"), err.get("message")
        payment_intent = None
    return PaymentRec(
        id=pid,
        object=kind,
        customer=_id(obj.get("customer")),
        invoice=_id(obj.get("invoice")),
        amount_cents=_int(obj.get("amount")),
        currency=str(obj.get("currency") or "usd"),
        status=status,
        failure_code=failure_code,
        failure_message=failure_message,
        created=_int(obj.get("created")),
        payment_intent=payment_intent,
        payment_method=_id(obj.get("payment_method")),
    )


# Decline codes that a retry cannot fix: the card must be updated (docs/billing.md, "hard
# declines are not retried").
HARD_DECLINES = frozenset(
    {
        "expired_card",
        "stolen_card",
        "lost_card",
        "pickup_card",
        "restricted_card",
        "invalid_account",
        "incorrect_number",
        "invalid_number",
        "authentication_required",
    }
)


def is_hard_decline(code: str | None) -> bool:
    return bool(code) and code in HARD_DECLINES


@dataclass(frozen=True)
class CardRec:
    """A card payment method: who it belongs to (None: detached) and what reminders need."""

    id: str
    customer: str | None
    brand: str
    last4: str
    exp_month: int
    exp_year: int


def parse_card(obj: Mapping[str, Any]) -> CardRec | None:
    """A ``payment_method`` of type card (current API and localstripe alike); None for any
    other type (SEPA debit, ...: they do not expire)."""
    if obj.get("type", "card") != "card" or not isinstance(obj.get("card"), Mapping):
        return None
    card = obj["card"]
    try:
        exp_month, exp_year = _int(card.get("exp_month")), _int(card.get("exp_year"))
    except (TypeError, ValueError):
        raise ShapeError("payment method's card has no numeric exp_month / exp_year") from None
    return CardRec(
        id=str(_require(obj, "id", "payment method")),
        customer=_id(obj.get("customer")),
        brand=str(card.get("brand") or "")[:32],
        last4=str(card.get("last4") or "")[:4],
        exp_month=exp_month if 1 <= exp_month <= 12 else 0,
        exp_year=exp_year if 0 < exp_year < 10000 else 0,
    )
