"""Signed, expiring links for the pages a customer opens from an email (billing pages).

A token names one purpose (``card``, ``reactivate``, ...), one customer, an expiry and a
few claims (an offer id, say), and is signed with an HMAC of all of them: only we can make
one, it opens only the page it was made for, and it stops working at its expiry. Unlike
the unsubscribe token (``lifecycle.email.unsubscribe``, which must work forever), these
links grant billing actions, so they expire.

Pure (no clock of its own: the caller passes ``now``), so workflow code may build links too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

_VERSION = "lifecycle-link-v1"


class BadLink(ValueError):
    """The token is malformed, was signed for another purpose, or its signature does not match."""


class ExpiredLink(BadLink):
    """The token was ours but its time is up."""


@dataclass(frozen=True)
class Link:
    purpose: str
    customer_id: str
    expires_at: datetime
    claims: dict[str, Any] = field(default_factory=dict)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, purpose: str, body: bytes) -> bytes:
    msg = f"{_VERSION}:{purpose}:".encode() + body
    return hmac.new(secret.encode(), msg, hashlib.sha256).digest()[:18]


def make_link_token(
    secret: str, purpose: str, customer_id: str, expires_at: datetime, **claims: Any
) -> str:
    """A token for ``purpose`` and ``customer_id`` valid until ``expires_at`` (claims: JSON values)."""
    if not secret:
        raise ValueError("a link secret is required")
    body = json.dumps(
        {"c": customer_id, "e": int(expires_at.timestamp()), "x": claims},
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    return f"{_b64(body)}.{_b64(_sign(secret, purpose, body))}"


def read_link_token(secret: str, purpose: str, token: str, *, now: datetime) -> Link:
    """The link the token carries; :class:`BadLink` if it is not ours for ``purpose``,
    :class:`ExpiredLink` if its time has passed."""
    try:
        raw_body, raw_sig = token.strip().split(".", 1)
        body = _unb64(raw_body)
        signature = _unb64(raw_sig)
    except (ValueError, UnicodeDecodeError):
        raise BadLink("the link is malformed") from None
    if not hmac.compare_digest(signature, _sign(secret, purpose, body)):
        raise BadLink("the link's signature does not match (it was changed, or is for another page)")
    try:
        data = json.loads(body)
        customer_id, expires, claims = str(data["c"]), int(data["e"]), dict(data.get("x") or {})
    except (ValueError, KeyError, TypeError):
        raise BadLink("the link is malformed") from None
    expires_at = datetime.fromtimestamp(expires, UTC)
    if now >= expires_at:
        raise ExpiredLink(f"the link expired on {expires_at:%Y-%m-%d %H:%M} UTC")
    return Link(purpose=purpose, customer_id=customer_id, expires_at=expires_at, claims=claims)


def link_url(public_url: str, path: str, token: str) -> str:
    """``{public_url}{path}?token=…`` (``path`` such as ``/billing/card``)."""
    return f"{public_url.rstrip('/')}{path}?token={token}"


# --- the card-update page (starter/pages/card.py) -------------------------------------------

CARD_PURPOSE = "card"
CARD_PATH = "/billing/card"


def card_update_url(public_url: str, secret: str, customer_id: str, *, now: datetime, ttl_days: int) -> str:
    """The signed link to the customer's card-update page, valid ``ttl_days`` from ``now``
    (every email gets it as ``card_update_url``: pre-dunning, dunning)."""
    token = make_link_token(secret, CARD_PURPOSE, customer_id, now + timedelta(days=ttl_days))
    return link_url(public_url, CARD_PATH, token)
