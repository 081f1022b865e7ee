"""Signed page links in campaign emails, made at send time.

A campaign describes a link in its step's context (``links``: variable name -> purpose,
path, ``until`` and claims) rather than carrying a token, so no link that grants a billing
action is ever written into a workflow history. The email service signs each here with
``link_secret``, valid ``link_ttl_days`` past ``until`` (e.g. the campaign's last email),
or past the send when no ``until`` is given.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from lifecycle.links import link_url, make_link_token
from lifecycle.settings import Settings


def page_link_vars(
    settings: Settings, customer_id: str, specs: Any, now: dt.datetime
) -> dict[str, str]:
    """``{variable: url}`` for every link ``specs`` describes (nothing for no specs)."""
    out: dict[str, str] = {}
    if not isinstance(specs, dict):
        return out
    for name, spec in specs.items():
        if not isinstance(spec, dict) or not spec.get("purpose") or not spec.get("path"):
            continue
        until = dt.datetime.fromisoformat(spec["until"]) if spec.get("until") else now
        expires = max(until, now) + dt.timedelta(days=settings.link_ttl_days)
        token = make_link_token(
            settings.link_secret, str(spec["purpose"]), customer_id, expires, **dict(spec.get("claims") or {})
        )
        out[str(name)] = link_url(settings.public_url, str(spec["path"]), token)
    return out
