"""Signed unsubscribe links: the token is the customer id and an HMAC of it, nothing else.

The token authenticates the request (no API key, no login): only we can sign it, and
it names exactly one customer. It does not expire, because an unsubscribe link in a
year-old email must still work (CAN-SPAM, RFC 8058).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

_PURPOSE = b"lifecycle-unsubscribe-v1:"


class BadToken(ValueError):
    """The token is malformed or its signature does not match."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, customer_id: str) -> bytes:
    return hmac.new(secret.encode(), _PURPOSE + customer_id.encode(), hashlib.sha256).digest()[:18]


def make_token(secret: str, customer_id: str) -> str:
    return f"{_b64(customer_id.encode())}.{_b64(_sign(secret, customer_id))}"


def read_token(secret: str, token: str) -> str:
    """The customer id the token was signed for; :class:`BadToken` if it was not signed by us."""
    try:
        raw_id, raw_sig = token.strip().split(".", 1)
        customer_id = _unb64(raw_id).decode()
        signature = _unb64(raw_sig)
    except (ValueError, UnicodeDecodeError):
        raise BadToken("malformed unsubscribe token") from None
    if not customer_id or not hmac.compare_digest(signature, _sign(secret, customer_id)):
        raise BadToken("unsubscribe token signature does not match")
    return customer_id


def unsubscribe_url(public_url: str, secret: str, customer_id: str) -> str:
    return f"{public_url.rstrip('/')}/unsubscribe?token={make_token(secret, customer_id)}"
