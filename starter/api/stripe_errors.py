"""The one mapping from a Stripe failure to the API's answer, by cause.

- the caller's input: an invalid request (a bogus ``pm_…`` id) is **422** with Stripe's
  message and the input it is about as ``field``; a card declined is **402** with the
  decline code and Stripe's message;
- Stripe unreachable, rate limited or failing (5xx), after the activity's retries: **503**
  with ``Retry-After``;
- anything else Stripe refused (e.g. our API key): **502**, it is not the caller's doing.

Errors arrive as the ``type`` and ``details`` of the ApplicationError that
``activities.stripe.stripe_error`` made (passed on by the workflow).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import HTTPException, status

from activities.stripe_answers import (
    STRIPE_CARD_DECLINED,
    STRIPE_INVALID_REQUEST,
    STRIPE_REQUEST_ERROR,
    STRIPE_UNAVAILABLE,
)

RETRY_AFTER_SECONDS = "30"

STRIPE_ERROR_TYPES = frozenset(
    {STRIPE_UNAVAILABLE, STRIPE_INVALID_REQUEST, STRIPE_CARD_DECLINED, STRIPE_REQUEST_ERROR, "StripeFailed"}
)


def _detail(details: Sequence[Any]) -> Mapping[str, Any]:
    first = details[0] if details else None
    return first if isinstance(first, Mapping) else {}


def stripe_http_error(kind: str | None, message: str, details: Sequence[Any] = ()) -> HTTPException | None:
    """The HTTP answer for a Stripe failure of this type; None if ``kind`` is not one."""
    if kind not in STRIPE_ERROR_TYPES:
        return None
    d = _detail(details)
    stripe_message = d.get("message") or message
    if kind == STRIPE_INVALID_REQUEST:
        return HTTPException(
            422,
            {"field": d.get("field"), "reason": stripe_message, "stripe_code": d.get("code")},
        )
    if kind == STRIPE_CARD_DECLINED:
        return HTTPException(
            status.HTTP_402_PAYMENT_REQUIRED,
            {
                "field": d.get("field"),
                "reason": stripe_message,
                "decline_code": d.get("decline_code") or d.get("code"),
            },
        )
    if kind == STRIPE_UNAVAILABLE:
        return HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            {"reason": f"{message}; nothing was changed, retry later"},
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
    return HTTPException(status.HTTP_502_BAD_GATEWAY, {"reason": message, "stripe_code": d.get("code")})
