"""Prices and dates in an email, as this customer reads them: in their currency, in their
time zone.

**Prices.** Campaigns write offer and upgrade emails from the tier catalog, whose prices
are US dollars (``$49``). For a customer who pays in another currency, :func:`localize_prices`
rewrites each tier price of the email's context (a ``{"code": <tier>, "price": ...,
"annual_price": ...}`` block, the expansion offer's ``annual`` block) with Stripe's price
for that tier in the customer's currency when the mirror has one (``€45``); otherwise it
says honestly that the price is in US dollars (``US$49``, and ``prices_note`` says so).
A bare ``$`` never reaches a customer who does not pay in US dollars.

**Dates.** :func:`local_date` and :func:`local_datetime` show an instant (a datetime or an
ISO 8601 string, as workflows pass them) in the customer's IANA time zone (UTC when
unknown or invalid); templates use them as filters: ``{{ suspend_at | local_date }}``.
:func:`localize_dates` redates a block that carries its instant (the renewal reminder's).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from lifecycle.billing.currencies import CATALOG_CURRENCY, list_price, tier_price_cents
from lifecycle.contracts import catalog
from lifecycle.contracts.money import money

_BARE_DOLLARS = re.compile(r"^-?\$[\d,]+(\.\d+)?$")


def price_text(session: Session, plan_code: str, interval: str, currency: str | None) -> str:
    """A tier's price per ``interval`` as a customer paying in ``currency`` reads it."""
    plan = catalog.get_plan(plan_code)
    cents = plan.price_cents(interval)
    if currency and currency.lower() != CATALOG_CURRENCY:
        found = tier_price_cents(session, plan_code, interval, currency)
        if found is not None:
            return money(found, currency)
    return list_price(cents, currency)


def prices_note(currency: str | None) -> str:
    """What an email adds when it quotes catalog prices to a customer paying in another currency."""
    if not currency or currency.lower() == CATALOG_CURRENCY:
        return ""
    return (f"Prices marked US$ are our list prices in US dollars; you are billed in "
            f"{currency.upper()} at the price Stripe shows when you change plan.")


def localize_prices(session: Session, context: dict[str, Any], currency: str | None,
                    plan_code: str | None) -> dict[str, Any]:
    """``context`` with every tier price in ``currency`` (see the module's docstring)."""
    if not currency or currency.lower() == CATALOG_CURRENCY:
        return context
    out = {k: _localize(session, v, currency) for k, v in context.items()}
    annual = out.get("annual")
    if isinstance(annual, Mapping) and plan_code in catalog.PLANS_BY_CODE:
        out["annual"] = _annual(session, dict(annual), plan_code, currency)
    return out


def _localize(session: Session, value: Any, currency: str) -> Any:
    if isinstance(value, Mapping):
        block = {k: _localize(session, v, currency) for k, v in value.items()}
        code = block.get("code")
        if isinstance(code, str) and code in catalog.PLANS_BY_CODE:
            if "price" in block:
                block["price"] = price_text(session, code, "month", currency)
            if "annual_price" in block:
                block["annual_price"] = price_text(session, code, "year", currency)
        return block
    if isinstance(value, list):
        return [_localize(session, v, currency) for v in value]
    if isinstance(value, str) and _BARE_DOLLARS.match(value):
        return "US" + value.lstrip("-") if not value.startswith("-") else "-US" + value[1:]
    return value


def _annual(session: Session, block: dict[str, Any], plan_code: str, currency: str) -> dict[str, Any]:
    """The expansion offer's "yearly instead of monthly": both prices in the customer's
    currency when Stripe has both, else the catalog's in US dollars (never a mix)."""
    month = tier_price_cents(session, plan_code, "month", currency)
    year = tier_price_cents(session, plan_code, "year", currency)
    if month is None or year is None:
        return block  # already marked US$ by _localize
    block.update(price=money(year, currency), monthly_price=money(month, currency),
                 saving=money(month * 12 - year, currency))
    return block


# --- dates --------------------------------------------------------------------------------


def check_time_zone(name: str) -> str:
    """``name`` if it is an IANA time zone (``Europe/Berlin``); else ValueError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not an IANA time zone (e.g. 'Europe/Berlin')") from None
    return name


def zone(name: str | None) -> ZoneInfo:
    """The customer's time zone; UTC when unknown or not an IANA name."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _instant(value: dt.datetime | dt.date | str) -> dt.datetime | dt.date:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)  # the engine's naive datetimes are UTC
    return value


def localize_dates(context: dict[str, Any], time_zone: str | None) -> dict[str, Any]:
    """``context`` with each block that carries an instant (``at``) and its ``date`` (a
    renewal: ``{"at": "2027-01-01T05:00:00+00:00", "date": "January 1, 2027"}``) dated in
    ``time_zone``: in Los Angeles that renewal is on December 31, 2026; likewise a usage
    block's ``period_end`` from its ``period_end_at``."""
    out = dict(context)
    for key, block in context.items():
        if isinstance(block, Mapping) and block.get("at") and "date" in block:
            out[key] = {**block, "date": local_date(block["at"], time_zone)}
        elif isinstance(block, Mapping) and block.get("period_end_at"):  # a usage email: "March 31"
            day = _local_day(block["period_end_at"], time_zone)
            out[key] = {**block, "period_end": f"{day:%B} {day.day}"}
    return out


def _local_day(value: dt.datetime | dt.date | str, time_zone: str | None) -> dt.date:
    at = _instant(value)
    return at.astimezone(zone(time_zone)).date() if isinstance(at, dt.datetime) else at


def local_date(value: dt.datetime | dt.date | str | None, time_zone: str | None) -> str:
    """``December 31, 2026``: the day ``value`` falls on in ``time_zone``."""
    if value is None or value == "":
        return ""
    day = _local_day(value, time_zone)
    return f"{day:%B} {day.day}, {day.year}"


def local_datetime(value: dt.datetime | str | None, time_zone: str | None) -> str:
    """``December 31, 2026 at 4:00 PM PST``: ``value`` on the clock of ``time_zone``."""
    if value is None or value == "":
        return ""
    at = _instant(value)
    if not isinstance(at, dt.datetime):
        return local_date(at, time_zone)
    local = at.astimezone(zone(time_zone))
    hour = local.hour % 12 or 12
    return f"{local:%B} {local.day}, {local.year} at {hour}:{local:%M} {local:%p} {local.tzname()}"
