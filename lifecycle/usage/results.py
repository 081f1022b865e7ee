"""What metering answers: the error a caller can fix, one event in and out, a batch's and a
check's result, a threshold crossing, a counter's drift, and the numbers they carry."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from lifecycle.usage.periods import Period

QUANTUM = Decimal("0.000001")  # quantities are stored with 6 decimal places
ZERO = Decimal(0)


class UsageError(Exception):
    """Bad input the caller can fix: ``field`` names what, ``reason`` says why.

    ``status`` is the HTTP status the API answers with (400 malformed, 404 unknown
    customer, 413 too large, 422 invalid value).
    """

    def __init__(self, field: str, reason: str, status: int = 422) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.status = status

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "reason": self.reason}


@dataclass(slots=True)
class EventIn:
    """One validated event (not yet checked against the customer)."""

    index: int
    customer_id: str
    metric: str
    quantity: Decimal | int
    occurred_at: dt.datetime
    idempotency_key: str


@dataclass(slots=True)
class EventResult:
    index: int
    idempotency_key: str | None
    status: str  # accepted | duplicate | rejected
    field: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "idempotency_key": self.idempotency_key,
                               "status": self.status}
        if self.status == "rejected":
            out["field"] = self.field
            out["reason"] = self.reason
        elif self.reason:
            out["reason"] = self.reason
        return out


@dataclass(slots=True)
class Crossing:
    """A threshold crossed and written to the outbox (``signal_id``)."""

    signal_id: int
    event_id: str
    customer_id: str
    metric: str
    threshold: int
    used: Decimal
    limit: Decimal
    limit_kind: str
    period_start: dt.datetime
    period_end: dt.datetime
    plan_code: str


@dataclass
class IngestResult:
    results: list[EventResult]
    crossings: list[Crossing] = field(default_factory=list)
    http_status: dict[int, int] = field(default_factory=dict)  # index -> 4xx of a rejected event

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.count("accepted"),
            "duplicates": self.count("duplicate"),
            "rejected": self.count("rejected"),
            "results": [r.as_dict() for r in self.results],
        }


@dataclass
class CheckResult:
    allowed: bool
    customer_id: str
    metric: str
    quantity: Decimal | int
    idempotency_key: str
    used: Decimal
    limit: Decimal | None
    limit_kind: str | None
    period: Period
    duplicate: bool = False
    crossings: list[Crossing] = field(default_factory=list)
    # refused because a dunning suspended the customer's access: why (payment overdue)
    overdue: str | None = None
    # refused because an accepted pause leaves no metered usage: why (until when)
    paused: str | None = None

    @property
    def remaining(self) -> Decimal | None:
        if self.limit is None:
            return None
        return max(self.limit - self.used, ZERO)

    @property
    def overage(self) -> Decimal:
        if self.limit is None:
            return ZERO
        return max(self.used - self.limit, ZERO)

    def as_dict(self) -> dict[str, Any]:
        reason = None
        if self.overdue:
            reason = self.overdue
        elif self.paused:
            reason = self.paused
        elif not self.allowed:
            reason = (
                f"hard limit of {number(self.limit)} {self.metric} for this billing period "
                f"would be exceeded (used {number(self.used)}, asked {number(self.quantity)})"
            )
        return {
            "allowed": self.allowed,
            "reason": reason,
            "payment_overdue": self.overdue is not None,
            "paused": self.paused is not None,
            "duplicate": self.duplicate,
            "customer_id": self.customer_id,
            "metric": self.metric,
            "quantity": number(self.quantity),
            "idempotency_key": self.idempotency_key,
            "used": number(self.used),
            "limit": number(self.limit),
            "limit_kind": self.limit_kind,
            "remaining": number(self.remaining),
            "overage": number(self.overage),
            "period_start": self.period.start.isoformat(),
            "period_end": self.period.end.isoformat(),
        }


@dataclass
class Drift:
    customer_id: str
    metric: str
    period_start: dt.datetime
    counted: Decimal  # what usage_counters says
    actual: Decimal  # the sum of the raw events
    fixed: bool = False

    @property
    def drift(self) -> Decimal:
        return self.counted - self.actual


def number(value: Decimal | int | None) -> int | float | None:
    """A Decimal as a JSON number: an int when whole."""
    if value is None or isinstance(value, int):
        return value
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def stored_quantity(value: Any) -> Decimal:
    """A stored quantity as a Decimal of 6 places (SQLite sums come back as floats)."""
    if value is None:
        return ZERO
    return (value if isinstance(value, Decimal) else Decimal(str(value))).quantize(QUANTUM)
