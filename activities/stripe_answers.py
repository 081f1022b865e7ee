"""How Stripe's answers become an activity's result or its failure: the SDK's errors mapped
by cause (retryable or not, with Stripe's message, code and field) and an invoice's payment
outcome. Pure: no Stripe call, no database."""

from __future__ import annotations

from typing import Any

import stripe
from temporalio.exceptions import ApplicationError

from lifecycle.billing.payment_shapes import is_hard_decline
from lifecycle.contracts.billing import RetryInvoiceResult

# The ApplicationError types a Stripe SDK error becomes; starter/api/stripe_errors.py turns
# each into its HTTP answer.
STRIPE_UNAVAILABLE = "StripeUnavailable"  # unreachable, rate limited, 5xx: retried, then 503
STRIPE_INVALID_REQUEST = "StripeInvalidRequest"  # the caller's input (a bogus id): 422
STRIPE_CARD_DECLINED = "StripeCardDeclined"  # the card was refused: 402
STRIPE_REQUEST_ERROR = "StripeRequestError"  # anything else Stripe refused (our key...): 502


def stripe_error(exc: stripe.StripeError, *, field: str | None = None) -> ApplicationError:
    """Map an SDK error by its cause: transient ones retry; the caller's input (an invalid
    request, a declined card) and the rest fail at once with Stripe's message.

    The details carry what an answer needs: ``field`` (the input the error is about:
    ``field`` when the caller knows it, e.g. ``payment_method_id``, else Stripe's
    ``param``), Stripe's ``code`` and ``decline_code``, its message and HTTP status.
    """
    status = exc.http_status
    message = exc.user_message or str(exc) or type(exc).__name__
    err = exc.error
    detail = {
        "http_status": status,
        "code": exc.code,
        "decline_code": getattr(err, "decline_code", None) if err is not None else None,
        "field": field or (getattr(err, "param", None) if err is not None else None),
        "message": message,
    }
    transient = (
        isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError)
        or status is None
        or status == 429
        or status >= 500
    )
    if transient:
        return ApplicationError(
            f"Stripe unavailable ({status or 'network error'}): {message}", detail, type=STRIPE_UNAVAILABLE
        )
    if isinstance(exc, stripe.CardError):
        detail["decline_code"] = detail["decline_code"] or exc.code
        return ApplicationError(
            f"card declined ({detail['decline_code']}): {message}",
            detail,
            type=STRIPE_CARD_DECLINED,
            non_retryable=True,
        )
    kind = STRIPE_INVALID_REQUEST if isinstance(exc, stripe.InvalidRequestError) else STRIPE_REQUEST_ERROR
    return ApplicationError(
        f"Stripe refused the request ({status}): {message}", detail, type=kind, non_retryable=True
    )


def business_error(message: str, type_: str = "BillingError") -> ApplicationError:
    return ApplicationError(message, type=type_, non_retryable=True)


def pay_marker(inv: Any) -> str:
    """What a pay call changes on the invoice, as read just before it: the attempt count
    (real Stripe) and the payment intent (localstripe makes a new one per pay call)."""
    return f"{inv.attempt_count}/{inv.payment_intent or '-'}"


def invoice_outcome(inv: Any, decline: stripe.CardError | None = None) -> RetryInvoiceResult:
    if inv.status == "paid":
        return RetryInvoiceResult("paid", inv.status, inv.amount_due_cents, charged=True)
    code = inv.failure_code
    message = inv.failure_message
    if decline is not None:
        err = decline.error
        code = (getattr(err, "decline_code", None) or decline.code) or code
        message = decline.user_message or message
    outcome = "requires_action" if code == "authentication_required" else "declined"
    return RetryInvoiceResult(
        outcome,
        inv.status,
        inv.amount_due_cents,
        failure_code=code,
        failure_message=message,
        hard_decline=is_hard_decline(code),
        hosted_invoice_url=inv.hosted_invoice_url,
    )
