"""When a marketing email may go out: A/B assignment, frequency cap, quiet hours. Pure functions.

No I/O and no clock here: the caller passes ``now`` (the workflow's time, handed to the
email activity) and the facts from the database, so every rule is unit-testable and the
same inputs always give the same decision.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lifecycle.contracts.policy import EmailVariant

HOLDOUT = "holdout"


def bucket(customer_id: str, campaign: str, step: str) -> float:
    """A number in [0, 1) fixed for this customer and step (SHA-256, not Python's hash())."""
    digest = hashlib.sha256(f"{campaign}\x1f{step}\x1f{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_variant(
    customer_id: str,
    campaign: str,
    step: str,
    variants: Sequence[EmailVariant],
    holdout: float = 0.0,
) -> str | None:
    """``holdout``, a variant's name, or None when the step runs no test.

    Deterministic per customer and step: a retry, a replay or a second run of the
    campaign assigns the same arm. The first ``holdout`` share of the unit interval is
    the holdout; the rest is split by the variants' weights.
    """
    if not variants and holdout <= 0:
        return None
    u = bucket(customer_id, campaign, step)
    if u < holdout:
        return HOLDOUT
    if not variants:
        return "control"
    u = (u - holdout) / (1 - holdout)
    total = sum(v.weight for v in variants)
    acc = 0.0
    for v in variants:
        acc += v.weight / total
        if u < acc:
            return v.name
    return variants[-1].name


def customer_zone(name: str | None) -> tuple[ZoneInfo, bool]:
    """The customer's IANA zone, or UTC (and False) when the name is unknown."""
    try:
        return ZoneInfo(name or "UTC"), True
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC"), False


def in_quiet_hours(now: dt.datetime, zone: ZoneInfo, start: dt.time, end: dt.time) -> bool:
    """Whether ``now`` falls in [start, end) local time (the span may wrap past midnight)."""
    if start == end:
        return False
    t = now.astimezone(zone).time().replace(tzinfo=None)
    if start < end:
        return start <= t < end
    return t >= start or t < end


def quiet_hours_end(now: dt.datetime, zone: ZoneInfo, start: dt.time, end: dt.time) -> dt.datetime:
    """The first instant (UTC) at or after ``now`` outside quiet hours.

    The end is a local wall time. On a spring-forward day a wall time in the gap
    (02:30 that never happens) maps, with ``fold=0``, to the instant just after the gap,
    so the send still happens, once. Durable timers get the UTC value.
    """
    if not in_quiet_hours(now, zone, start, end):
        return now
    local = now.astimezone(zone)
    for days in range(0, 3):
        day = local.date() + dt.timedelta(days=days)
        candidate = dt.datetime.combine(day, end, tzinfo=zone).astimezone(dt.UTC)
        if candidate > now and not in_quiet_hours(candidate, zone, start, end):
            return candidate
    raise AssertionError("no end of quiet hours within two days")  # start != end makes one


def cap_free_at(
    recent: Sequence[dt.datetime], now: dt.datetime, cap: int, window: dt.timedelta
) -> dt.datetime | None:
    """When the frequency cap next allows an email, or None if it allows one now.

    ``recent``: when this customer's marketing emails went out (any order). At most
    ``cap`` in any ``window``; 0 means no cap.
    """
    if cap <= 0:
        return None
    inside = sorted(t for t in recent if now - window < t <= now)
    if len(inside) < cap:
        return None
    return inside[-cap] + window


@dataclass
class Timing:
    """The timing decision for a marketing email: send at ``at`` (== now means now)."""

    at: dt.datetime
    reasons: list[str] = field(default_factory=list)

    @property
    def now(self) -> bool:
        return not self.reasons


def marketing_timing(
    now: dt.datetime,
    *,
    recent: Sequence[dt.datetime],
    cap: int,
    cap_window: dt.timedelta,
    zone_name: str | None,
    quiet_start: dt.time,
    quiet_end: dt.time,
) -> Timing:
    """When a marketing email may go out, and why not now (cap, then quiet hours)."""
    reasons: list[str] = []
    at = now
    free = cap_free_at(recent, now, cap, cap_window)
    if free is not None:
        at = free
        hours = cap_window.total_seconds() / 3600
        reasons.append(f"frequency cap: {cap} marketing email(s) per {hours:g} h already sent")
    zone, known = customer_zone(zone_name)
    later = quiet_hours_end(at, zone, quiet_start, quiet_end)
    if later != at:
        local = at.astimezone(zone)
        where = zone.key if known else f"UTC (unknown time zone {zone_name!r})"
        reasons.append(
            f"quiet hours {quiet_start:%H:%M}-{quiet_end:%H:%M} in {where}: "
            f"it is {local:%H:%M} there"
        )
        at = later
    return Timing(at=at, reasons=reasons)
