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



# --- parsers ------------------------------------------------------------------------------


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
