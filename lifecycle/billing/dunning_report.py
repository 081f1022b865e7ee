"""What finance sees of dunning (``lifecycle dunning report``, ``GET /v1/dunning/report``),
read from the cases the dunning workflows write (``dunning_cases``, one per invoice).

Failed invoices since a date; recovered (count, amount, by path: retry_<n>, card_update,
manual, stripe); still open; lost (the end action came with the invoice unpaid); closed
(voided, uncollectible); the recovery rate over the settled ones; the median days to
recover; and the same by decline code.

Amounts are never summed across currencies: each total is ``{"count": n, "amounts":
{"usd": 9900, "eur": 1000}}``, one amount per currency in Stripe's minor unit (cents; yen
for JPY), so a dollar and a euro are never added into one figure.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.models import DunningCase


def report(session: Session, *, since: dt.datetime | None = None) -> dict[str, Any]:
    q = select(DunningCase).order_by(DunningCase.failed_at)
    if since is not None:
        q = q.where(DunningCase.failed_at >= since)
    cases = list(session.scalars(q))
    body = _summary(cases)
    by_code: dict[str, list[DunningCase]] = defaultdict(list)
    for c in cases:
        by_code[c.decline_code or "unknown"].append(c)
    body["by_decline_code"] = {
        code: {k: v for k, v in _summary(group).items() if k != "recovered_by"}
        for code, group in sorted(by_code.items())
    }
    body["since"] = since.isoformat() if since else None
    return body


def _summary(cases: list[DunningCase]) -> dict[str, Any]:
    recovered = [c for c in cases if c.outcome == "recovered"]
    lost = [c for c in cases if c.outcome == "lost"]
    settled = len(recovered) + len(lost)
    days = [
        (c.closed_at - c.failed_at).total_seconds() / 86400 for c in recovered if c.closed_at is not None
    ]
    paths: Counter[str] = Counter(c.how or "unknown" for c in recovered)
    by_path: dict[str, list[DunningCase]] = defaultdict(list)
    for c in recovered:
        by_path[c.how or "unknown"].append(c)
    return {
        "failed": _count(cases),
        "recovered": _count(recovered),
        "recovered_by": {p: _count(by_path[p]) for p in sorted(paths)},
        "open": _count([c for c in cases if c.outcome == "open"]),
        "lost": _count(lost),
        "closed": _count([c for c in cases if c.outcome == "closed"]),
        # recovered out of those settled either way (open and voided ones are not counted)
        "recovery_rate": round(len(recovered) / settled, 4) if settled else None,
        "median_days_to_recover": round(statistics.median(days), 2) if days else None,
    }


def _count(cases: list[DunningCase]) -> dict[str, Any]:
    """How many, and the amount in each currency (minor units), never one sum of several."""
    amounts: Counter[str] = Counter()
    for c in cases:
        amounts[(c.currency or "usd").lower()] += c.amount_cents
    return {"count": len(cases), "amounts": dict(sorted(amounts.items()))}
