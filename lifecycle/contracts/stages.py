"""Lifecycle stages and the one rule from a Stripe subscription's status to a stage.

Pure: the customer workflow follows it on every subscription event, the billing mirror
uses it for a customer first seen in Stripe, and every "is this subscription live?"
question asks :func:`is_live`. Table-tested in ``tests/test_stages.py``.
"""

from __future__ import annotations

# Lifecycle stages (docs/architecture.md: trialing -> active -> past_due -> active | canceled,
# trialing -> expired, canceled | expired -> won_back | lost).
TRIALING = "trialing"
ACTIVE = "active"
EXPIRED = "expired"
PAST_DUE = "past_due"
CANCELED = "canceled"
WON_BACK = "won_back"
LOST = "lost"
STAGES = (TRIALING, ACTIVE, PAST_DUE, EXPIRED, CANCELED, WON_BACK, LOST)
PAID_STAGES = (ACTIVE, WON_BACK)

# A subscription in one of these has ended: it bills no more and cannot be changed.
ENDED_STATUSES = frozenset({"canceled", "incomplete_expired"})


def is_live(status: str | None) -> bool:
    """Still billing or able to: a subscription that has not ended."""
    return status is not None and status not in ENDED_STATUSES


def stage_for_status(status: str, stage: str | None = None) -> str:
    """The stage a customer at ``stage`` moves to when their subscription turns ``status``.

    ``stage`` None: a customer first seen in Stripe (no stage yet). A status that says
    nothing about the stage (``paused``, an unknown one) leaves it where it is.
    """
    if status == "active" or status == "trialing" and stage not in (None, TRIALING):
        if stage in (CANCELED, EXPIRED, LOST):  # a lost customer who comes back is won back too
            return WON_BACK
        return stage if stage in PAID_STAGES else ACTIVE
    if status in ("past_due", "unpaid"):
        return PAST_DUE
    if status == "incomplete":  # the first payment failed
        return PAST_DUE if stage is None or stage in (*PAID_STAGES, TRIALING) else stage
    if status in ENDED_STATUSES:
        return CANCELED if stage is None or stage in (*PAID_STAGES, PAST_DUE, TRIALING) else stage
    return stage or TRIALING
