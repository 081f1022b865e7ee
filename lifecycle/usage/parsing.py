"""Reading one usage event: its shape and values (:func:`parse_event`), then whether it fits
the customer it names (:func:`check_against_customer`). Both raise :class:`UsageError`."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from lifecycle.contracts import catalog
from lifecycle.text import unsafe_reason
from lifecycle.usage.periods import CustomerInfo
from lifecycle.usage.results import QUANTUM, EventIn, UsageError

MAX_KEY_LENGTH = 200
MAX_CUSTOMER_ID_LENGTH = 128
MAX_QUANTITY = Decimal("1e12")
MAX_QUANTITY_INT = 10**12


def parse_timestamp(value: Any, field_name: str = "timestamp") -> dt.datetime:
    if isinstance(value, bool):
        raise UsageError(field_name, "expected an ISO 8601 time with a zone, or epoch seconds")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise UsageError(field_name, "expected a finite number of epoch seconds")
        try:
            return dt.datetime.fromtimestamp(value, dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise UsageError(field_name, f"epoch seconds out of range: {value}") from None
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise UsageError(
                field_name, f"not an ISO 8601 time: {value[:40]!r} (e.g. 2026-11-25T08:00:00Z)"
            ) from None
        if parsed.tzinfo is None:
            raise UsageError(field_name, f"{value[:40]!r} has no time zone; add Z or +00:00")
        return parsed.astimezone(dt.UTC)
    raise UsageError(field_name, "expected an ISO 8601 time with a zone, or epoch seconds")


def parse_quantity(value: Any) -> Decimal | int:
    if type(value) is int and 0 <= value <= MAX_QUANTITY_INT:  # the common case, kept cheap
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError("quantity", f"expected a number, got {type(value).__name__} {str(value)[:40]!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError("quantity", "expected a finite number")
    if value < 0:
        raise UsageError("quantity", f"must not be negative, got {value}")
    try:
        qty = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    except InvalidOperation:  # pragma: no cover - repr of a finite float always parses
        raise UsageError("quantity", "not a number") from None
    if qty > MAX_QUANTITY:
        raise UsageError("quantity", f"too large (at most {MAX_QUANTITY:,.0f} per event)")
    if qty != qty.quantize(QUANTUM):
        raise UsageError("quantity", "at most 6 decimal places")
    return qty


def _text_field(raw: dict[str, Any], name: str, max_len: int) -> str:
    value = raw.get(name)
    if value is None:
        raise UsageError(name, "required")
    if not isinstance(value, str):
        raise UsageError(name, f"expected text, got {type(value).__name__}")
    if not value or not value.strip():
        raise UsageError(name, "must not be empty")
    if len(value) > max_len:
        raise UsageError(name, f"longer than {max_len} characters")
    reason = unsafe_reason(value)
    if reason is not None:  # PostgreSQL refuses NUL; a lone surrogate is not UTF-8
        raise UsageError(name, reason)
    return value


def parse_event(
    raw: Any, index: int, now: dt.datetime, *, skew: dt.timedelta, key_required: bool = True
) -> EventIn:
    """Validate one event's shape and values (the customer is checked later). Raises UsageError."""
    if not isinstance(raw, dict):
        raise UsageError("event", f"expected a JSON object, got {type(raw).__name__}")
    customer_id = _text_field(raw, "customer_id", MAX_CUSTOMER_ID_LENGTH)
    metric = _text_field(raw, "metric", 64)
    if metric not in catalog.METRICS:
        raise UsageError("metric", f"unknown metric {metric[:64]!r}; expected one of "
                                   f"{', '.join(catalog.METRICS)}")
    quantity = parse_quantity(raw["quantity"]) if "quantity" in raw else Decimal(1)
    ts = raw.get("timestamp")
    occurred_at = now if ts is None else parse_timestamp(ts)
    if occurred_at > now + skew:
        raise UsageError("timestamp", f"{occurred_at.isoformat()} is in the future "
                                      f"(more than {skew.total_seconds():.0f} s ahead of the server)")
    if key_required or raw.get("idempotency_key") is not None:
        key = _text_field(raw, "idempotency_key", MAX_KEY_LENGTH)
    else:
        key = f"auto:{uuid.uuid4().hex}"
    return EventIn(index, customer_id, metric, quantity, occurred_at, key)


def check_against_customer(ev: EventIn, info: CustomerInfo | None, skew: dt.timedelta) -> None:
    if info is None:
        raise UsageError("customer_id", f"unknown customer {ev.customer_id[:128]!r}", status=404)
    if ev.occurred_at < info.created_at - skew:
        raise UsageError(
            "timestamp",
            f"{ev.occurred_at.isoformat()} is before the customer existed "
            f"(created {info.created_at.isoformat()})",
        )
