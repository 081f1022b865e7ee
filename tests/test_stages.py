"""The one rule from a subscription's status to a lifecycle stage, as a table."""

from __future__ import annotations

import pytest

from lifecycle.contracts.stages import (
    ACTIVE,
    CANCELED,
    EXPIRED,
    PAST_DUE,
    TRIALING,
    WON_BACK,
    is_live,
    stage_for_status,
)

# (current stage or None for a customer first seen in Stripe, status) -> stage
TABLE = [
    (None, "active", ACTIVE),
    (None, "trialing", TRIALING),
    (None, "past_due", PAST_DUE),
    (None, "unpaid", PAST_DUE),
    (None, "incomplete", PAST_DUE),
    (None, "canceled", CANCELED),
    (None, "incomplete_expired", CANCELED),
    (None, "paused", TRIALING),
    (TRIALING, "active", ACTIVE),
    (TRIALING, "trialing", TRIALING),  # Stripe's own trial: still ours
    (TRIALING, "incomplete", PAST_DUE),  # the first payment at conversion failed
    (TRIALING, "canceled", CANCELED),
    (ACTIVE, "trialing", ACTIVE),
    (ACTIVE, "past_due", PAST_DUE),
    (ACTIVE, "canceled", CANCELED),
    (ACTIVE, "paused", ACTIVE),
    (PAST_DUE, "active", ACTIVE),
    (PAST_DUE, "incomplete", PAST_DUE),
    (PAST_DUE, "canceled", CANCELED),
    (CANCELED, "active", WON_BACK),
    (EXPIRED, "active", WON_BACK),
    (EXPIRED, "trialing", WON_BACK),
    (CANCELED, "incomplete", CANCELED),
    (EXPIRED, "canceled", EXPIRED),
    (WON_BACK, "active", WON_BACK),
    (WON_BACK, "unpaid", PAST_DUE),
]


@pytest.mark.parametrize(("stage", "status", "expected"), TABLE)
def test_stage_for_status(stage: str | None, status: str, expected: str) -> None:
    assert stage_for_status(status, stage) == expected


@pytest.mark.parametrize(
    ("status", "live"),
    [("active", True), ("trialing", True), ("past_due", True), ("unpaid", True), ("incomplete", True),
     ("paused", True), ("canceled", False), ("incomplete_expired", False), (None, False)],
)
def test_is_live(status: str | None, live: bool) -> None:
    assert is_live(status) is live
