"""Stripe objects as our own typed records: the one place that knows Stripe's shapes.

Two shapes reach the engine:

- the pinned API version (``lifecycle.settings.STRIPE_API_VERSION``, 2025-03-31 and later):
  a subscription's ``current_period_start/end`` live on its items, an item carries a
  ``price`` (and, for plan-backed prices, a ``plan``), an invoice names its subscription
  under ``parent.subscription_details.subscription`` and has no ``charge``;
- localstripe's 2017-08-15 shape: ``current_period_*`` on the subscription, ``plan`` on
  items, ``subscription`` and ``charge`` (sometimes expanded) on the invoice, booleans
  sent back as the strings ``"true"``/``"false"`` after an update.

Everything else in the engine reads the records below, never raw Stripe dicts.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lifecycle.contracts.stages import is_live


class ShapeError(ValueError):
    """A Stripe payload lacks a field the engine needs; the message names it."""


def to_plain(obj: Any) -> Any:
    """A ``stripe.StripeObject`` (or anything holding them) as plain dicts and lists."""
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    return obj


def _id(value: Any) -> str | None:
    """An id from a field that may hold the id or the expanded object."""
    if value is None or value == "":
        return None
    if isinstance(value, Mapping):
        return value.get("id")
    return str(value)


def as_bool(value: Any) -> bool:
    """A Stripe boolean; localstripe sends ``"true"``/``"false"`` back after an update."""
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


def _int(value: Any, default: int = 0) -> int:
    if value is None or value == "":
        return default
    return int(value)


def ts(value: Any) -> dt.datetime | None:
    """Stripe epoch seconds as an aware UTC datetime (a ShapeError if it cannot be one)."""
    if value in (None, "", 0):
        return None
    try:
        return dt.datetime.fromtimestamp(int(value), tz=dt.UTC)
    except (OverflowError, OSError, ValueError, TypeError):
        raise ShapeError(f"not a time in epoch seconds: {str(value)[:40]}") from None


def _require(obj: Mapping[str, Any], key: str, what: str) -> Any:
    if obj.get(key) in (None, ""):
        raise ShapeError(f"{what} has no {key!r}")
    return obj[key]


def _metadata(obj: Mapping[str, Any]) -> dict[str, str]:
    md = obj.get("metadata") or {}
    return {str(k): str(v) for k, v in dict(md).items()}




# --- records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerRec:
    id: str
    email: str | None
    name: str | None
    metadata: dict[str, str]
    default_payment_method: str | None
    created: int
    deleted: bool = False


@dataclass(frozen=True)
class PriceRec:
    """A price (current API) or a legacy plan: what a subscription item bills."""

    id: str
    object: str  # price | plan
    product_id: str | None
    product_metadata: dict[str, str] | None  # only when the product came expanded
    lookup_key: str | None
    nickname: str | None
    metadata: dict[str, str]
    interval: str | None  # month | year | week | day
    interval_count: int
    unit_amount_cents: int
    currency: str
    active: bool = True


@dataclass(frozen=True)
class SubscriptionItemRec:
    id: str | None
    price: PriceRec
    quantity: int


@dataclass(frozen=True)
class SubscriptionRec:
    id: str
    customer: str
    status: str
    plan_id: str | None  # the Stripe plan (= price) id of the first item
    interval: str | None  # month | year
    amount_cents: int  # per period, times quantity
    currency: str
    current_period_start: dt.datetime | None
    current_period_end: dt.datetime | None
    cancel_at_period_end: bool
    cancel_at: dt.datetime | None
    canceled_at: dt.datetime | None
    ended_at: dt.datetime | None
    trial_end: dt.datetime | None
    latest_invoice: str | None
    created: int
    metadata: dict[str, str] = field(default_factory=dict)
    plan_metadata: dict[str, str] = field(default_factory=dict)
    item_id: str | None = None
    discount_coupon: str | None = None
    items: tuple[SubscriptionItemRec, ...] = ()
    gross_amount_cents: int = 0  # before discounts
    interval_count: int = 1  # the first item's: billed every interval_count intervals (quarterly: month x3)

    @property
    def is_live(self) -> bool:
        """Still billing or able to (not ended)."""
        return is_live(self.status)


@dataclass(frozen=True)
class InvoiceRec:
    id: str
    customer: str | None
    customer_email: str | None
    subscription: str | None
    status: str  # draft | open | paid | void | uncollectible
    amount_due_cents: int
    amount_paid_cents: int
    currency: str
    attempt_count: int
    period_start: dt.datetime | None
    period_end: dt.datetime | None
    paid_at: dt.datetime | None
    created: int
    billing_reason: str | None
    charge: str | None  # 2017 shape only
    payment_intent: str | None  # 2017 shape only
    hosted_invoice_url: str | None = None
    next_payment_attempt: dt.datetime | None = None
    # failure of the last charge when the payload carries it (expanded charge)
    failure_code: str | None = None
    failure_message: str | None = None


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


@dataclass(frozen=True)
class EventRec:
    id: str
    type: str
    created: int
    livemode: bool
    api_version: str | None
    object: dict[str, Any]
    previous_attributes: dict[str, Any]

    @property
    def object_type(self) -> str | None:
        return self.object.get("object")


# --- parsers ------------------------------------------------------------------------------


# What a webhook event may look like before the engine stores any of it. Stripe's ids are
# at most 255 characters (letters, digits, ``_``; ``-``, ``.``, ``:`` tolerated for ids made
# by tests and tools); event types are dotted lower-case words.
MAX_ID = 255
MAX_TYPE = 100
_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,255}")
_TYPE_RE = re.compile(r"[a-z0-9_.]{1,100}")
_API_VERSION_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# Seconds since the epoch a datetime (and a BIGINT) can hold: up to 9999-12-31.
MAX_EPOCH = 253402300799
MAX_DEPTH = 64


def _check_strings(value: Any, where: str = "event") -> None:
    """Refuse what the database cannot store: NUL characters (PostgreSQL refuses them in
    text and JSON), unpaired surrogates (not UTF-8), and absurd nesting. Iterative, so a
    hostile payload cannot exhaust the stack."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ShapeError(f"{path}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, str):
            _check_text(item, path)
        elif isinstance(item, Mapping):
            for k, v in item.items():
                key = str(k)
                _check_text(key, f"{path} (a key)")
                stack.append((v, f"{path}.{key[:40]}", depth + 1))
        elif isinstance(item, list | tuple):
            for i, v in enumerate(item):
                stack.append((v, f"{path}[{i}]", depth + 1))


def _check_text(text: str, path: str) -> None:
    if "\x00" in text:
        raise ShapeError(f"{path}: contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ShapeError(f"{path}: not valid UTF-8 (an unpaired surrogate)") from None


def _event_id(value: Any) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        shown = repr(value)[:60]
        raise ShapeError(
            f"event 'id': expected up to {MAX_ID} letters, digits or _.:- characters, got {shown}"
        )
    return value


def _event_type(value: Any) -> str:
    if not isinstance(value, str) or not _TYPE_RE.fullmatch(value):
        shown = repr(value)[:60]
        raise ShapeError(f"event 'type': expected up to {MAX_TYPE} characters of a-z 0-9 _ ., got {shown}")
    return value


def _event_created(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ShapeError(f"event 'created': expected epoch seconds (an integer), got {repr(value)[:40]}")
    if not 0 < value <= MAX_EPOCH:
        raise ShapeError(f"event 'created': {str(value)[:40]} is not a time (0 < created <= {MAX_EPOCH})")
    return value


def parse_event(payload: Any) -> EventRec:
    """An event as received; every field the engine reads or stores is checked first
    (a ShapeError names the field), so nothing the database or the mirror cannot take
    is ever recorded."""
    if not isinstance(payload, Mapping):
        raise ShapeError(f"not an event object: a JSON {type(payload).__name__}, expected an object")
    if payload.get("object") not in (None, "event"):
        raise ShapeError(f"not an event object: object={str(payload.get('object'))[:40]!r}")
    _check_strings(payload)
    data = payload.get("data")
    if not isinstance(data, Mapping) or not isinstance(data.get("object"), Mapping):
        raise ShapeError("event has no 'data.object'")
    previous = data.get("previous_attributes")
    if previous is not None and not isinstance(previous, Mapping):
        raise ShapeError("event 'data.previous_attributes': expected an object")
    livemode = payload.get("livemode", False)
    if not isinstance(livemode, bool) and livemode not in ("true", "false", None):
        raise ShapeError(f"event 'livemode': expected a boolean, got {repr(livemode)[:40]}")
    api_version = payload.get("api_version")
    if api_version is not None and (
        not isinstance(api_version, str) or not _API_VERSION_RE.fullmatch(api_version)
    ):
        raise ShapeError(f"event 'api_version': expected a version such as 2026-10-28.endive, got {repr(api_version)[:40]}")
    if payload.get("id") in (None, ""):
        raise ShapeError("event has no 'id'")
    if payload.get("type") in (None, ""):
        raise ShapeError("event has no 'type'")
    if payload.get("created") in (None, ""):
        raise ShapeError("event has no 'created'")
    return EventRec(
        id=_event_id(payload["id"]),
        type=_event_type(payload["type"]),
        created=_event_created(payload["created"]),
        livemode=as_bool(livemode or False),
        api_version=api_version,
        object=dict(data["object"]),
        previous_attributes=dict(previous or {}),
    )


def parse_customer(obj: Mapping[str, Any]) -> CustomerRec:
    settings = obj.get("invoice_settings") or {}
    return CustomerRec(
        id=str(_require(obj, "id", "customer")),
        email=obj.get("email"),
        name=obj.get("name"),
        metadata=_metadata(obj),
        default_payment_method=_id(settings.get("default_payment_method"))
        or _id(obj.get("default_source")),
        created=_int(obj.get("created")),
        deleted=as_bool(obj.get("deleted", False)),
    )


def parse_price(obj: Mapping[str, Any] | str | None, *, kind: str | None = None) -> PriceRec | None:
    """A price or a legacy plan object (or just its id) as a record; None if absent."""
    if obj is None or obj == "":
        return None
    if not isinstance(obj, Mapping):
        obj = {"id": obj}
    pid = _id(obj.get("id"))
    if not pid:
        return None
    kind = kind or str(obj.get("object") or ("plan" if not str(pid).startswith("price_") else "price"))
    product = obj.get("product")
    product_md = _metadata(product) if isinstance(product, Mapping) else None
    raw_recurring = obj.get("recurring")
    recurring: Mapping[str, Any] = raw_recurring if isinstance(raw_recurring, Mapping) else {}
    interval = obj.get("interval") or recurring.get("interval")
    count = obj.get("interval_count") or recurring.get("interval_count") or 1
    if obj.get("unit_amount") is not None:
        unit = _int(obj.get("unit_amount"))
    else:
        unit = _int(obj.get("amount"))
    lookup_key = obj.get("lookup_key")
    return PriceRec(
        id=str(pid),
        object="plan" if kind == "plan" else "price",
        product_id=_id(product),
        product_metadata=product_md,
        lookup_key=str(lookup_key) if lookup_key not in (None, "") else None,
        nickname=str(obj["nickname"]) if obj.get("nickname") not in (None, "") else None,
        metadata=_metadata(obj),
        interval=str(interval) if interval else None,
        interval_count=_int(count, 1) or 1,
        unit_amount_cents=unit,
        currency=str(obj.get("currency") or "usd"),
        active=as_bool(obj.get("active", True)),
    )


def _item_price(item: Mapping[str, Any]) -> PriceRec | None:
    """The price of a subscription item: ``price`` (current API, has the lookup key) else
    ``plan`` (2017 shape, and legacy plans)."""
    price = item.get("price")
    plan = item.get("plan")
    if price not in (None, ""):
        rec = parse_price(price, kind="price")
        if rec is not None and isinstance(plan, Mapping) and rec.interval is None:
            # a plan-backed price whose recurring block is missing: take the plan's interval
            rec = parse_price({**plan, **(price if isinstance(price, Mapping) else {"id": price})}, kind="price")
        return rec
    return parse_price(plan, kind="plan")


def _coupons(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The coupons of a subscription's discount(s) that came expanded (an id alone says nothing)."""
    found: list[Any] = []
    discount = obj.get("discount")
    if isinstance(discount, Mapping) and discount:
        found.append(discount.get("coupon") or (discount.get("source") or {}).get("coupon"))
    for d in obj.get("discounts") or []:
        if isinstance(d, Mapping):
            found.append(d.get("coupon") or (d.get("source") or {}).get("coupon"))
    return [c for c in found if isinstance(c, Mapping)]


def discounted(amount_cents: int, coupons: list[Mapping[str, Any]]) -> int:
    """An amount after the coupons: each percent_off in turn, then each amount_off; never below 0."""
    amount = float(amount_cents)
    for c in coupons:
        if c.get("percent_off") not in (None, ""):
            amount *= 1 - float(c["percent_off"]) / 100
    for c in coupons:
        if c.get("amount_off") not in (None, ""):
            amount -= _int(c["amount_off"])
    return max(0, round(amount))


def parse_subscription(obj: Mapping[str, Any]) -> SubscriptionRec:
    sid = str(_require(obj, "id", "subscription"))
    raw_items = (obj.get("items") or {}).get("data") or []
    items: list[SubscriptionItemRec] = []
    for raw in raw_items:
        if not isinstance(raw, Mapping):
            continue
        price_rec = _item_price(raw)
        if price_rec is not None:
            items.append(SubscriptionItemRec(_id(raw.get("id")), price_rec, _int(raw.get("quantity"), 1) or 1))
    if not items and obj.get("plan"):  # very old shape: the plan on the subscription itself
        legacy = parse_price(obj.get("plan"), kind="plan")
        if legacy is not None:
            items.append(SubscriptionItemRec(None, legacy, _int(obj.get("quantity"), 1) or 1))
    item: Mapping[str, Any] = raw_items[0] if raw_items and isinstance(raw_items[0], Mapping) else {}
    first = items[0].price if items else None
    gross = sum(i.price.unit_amount_cents * i.quantity for i in items)
    coupons = _coupons(obj)
    # Current shape: periods on the item; 2017 shape: on the subscription.
    period_start = item.get("current_period_start") or obj.get("current_period_start")
    period_end = item.get("current_period_end") or obj.get("current_period_end")
    discount = obj.get("discount") or {}
    coupon = None
    if isinstance(discount, Mapping) and discount:
        coupon = _id(discount.get("coupon")) or _id(
            (discount.get("source") or {}).get("coupon")
        )
    elif obj.get("discounts"):
        first_d = obj["discounts"][0]
        coupon = _id(first_d.get("coupon")) if isinstance(first_d, Mapping) else None
    return SubscriptionRec(
        id=sid,
        customer=str(_id(_require(obj, "customer", f"subscription {sid}"))),
        status=str(_require(obj, "status", f"subscription {sid}")),
        plan_id=first.id if first else None,
        interval=first.interval if first else None,
        amount_cents=discounted(gross, coupons),
        currency=str((first.currency if first else None) or obj.get("currency") or "usd"),
        current_period_start=ts(period_start),
        current_period_end=ts(period_end),
        cancel_at_period_end=as_bool(obj.get("cancel_at_period_end", False)),
        cancel_at=ts(obj.get("cancel_at")),
        canceled_at=ts(obj.get("canceled_at")),
        ended_at=ts(obj.get("ended_at")),
        trial_end=ts(obj.get("trial_end")),
        latest_invoice=_id(obj.get("latest_invoice")),
        created=_int(obj.get("created")),
        metadata=_metadata(obj),
        plan_metadata=dict(first.metadata) if first else {},
        item_id=_id(item.get("id")),
        discount_coupon=coupon,
        interval_count=first.interval_count if first else 1,
        items=tuple(items),
        gross_amount_cents=gross,
    )


def parse_product(obj: Mapping[str, Any]) -> tuple[str, str | None, dict[str, str], bool]:
    """(id, name, metadata, active) of a product object."""
    pid = str(_require(obj, "id", "product"))
    name = obj.get("name")
    return pid, str(name) if name is not None else None, _metadata(obj), as_bool(obj.get("active", True))


def parse_invoice(obj: Mapping[str, Any]) -> InvoiceRec:
    iid = str(_require(obj, "id", "invoice"))
    parent = obj.get("parent") or {}
    subscription = _id(obj.get("subscription")) or _id(
        (parent.get("subscription_details") or {}).get("subscription")
    )
    transitions = obj.get("status_transitions") or {}
    charge = obj.get("charge")
    failure_code = failure_message = None
    if isinstance(charge, Mapping):
        failure_code = charge.get("failure_code")
        failure_message = charge.get("failure_message")
    pi = obj.get("payment_intent")
    if isinstance(pi, Mapping) and not failure_code:
        err = pi.get("last_payment_error") or {}
        failure_code = err.get("decline_code") or err.get("code")
        failure_message = err.get("message")
    status = obj.get("status")
    if status is None:  # very old shape: booleans only
        status = "paid" if as_bool(obj.get("paid")) else "open"
    return InvoiceRec(
        id=iid,
        customer=_id(obj.get("customer")),
        customer_email=obj.get("customer_email"),
        subscription=subscription,
        status=str(status),
        amount_due_cents=_int(obj.get("amount_due")),
        amount_paid_cents=_int(obj.get("amount_paid")),
        currency=str(obj.get("currency") or "usd"),
        attempt_count=_int(obj.get("attempt_count")),
        period_start=ts(obj.get("period_start")),
        period_end=ts(obj.get("period_end")),
        paid_at=ts(transitions.get("paid_at")),
        created=_int(obj.get("created") or obj.get("date")),
        billing_reason=obj.get("billing_reason"),
        charge=_id(charge),
        payment_intent=_id(pi),
        hosted_invoice_url=obj.get("hosted_invoice_url"),
        next_payment_attempt=ts(obj.get("next_payment_attempt")),
        failure_code=failure_code,
        failure_message=failure_message,
    )


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
