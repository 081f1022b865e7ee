"""Typed event payloads: what the starter builds is what the workflow reads, and the data
recorded histories carry (older shapes included) still reads."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lifecycle.contracts.events import (
    PAYLOADS,
    Activation,
    EventKind,
    InvoicePaymentFailed,
    PaymentMethodAdded,
    Signup,
    UsageThreshold,
    customer_event,
    payload_of,
)


def test_every_kind_has_exactly_one_payload() -> None:
    assert set(PAYLOADS) == {k.value for k in EventKind}


def test_a_payload_round_trips_through_the_wire_shape() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    sent = UsageThreshold(metric="ai_requests", threshold=80, used=800, limit=1000, limit_kind="hard",
                          period_start=start, period_end=None, plan="starter")
    ev = customer_event("usage:x", sent)
    assert ev.kind == "usage_threshold"
    assert ev.data["period_start"] == "2026-11-01T00:00:00+00:00"  # JSON-safe, as histories carry it
    assert payload_of(ev, UsageThreshold) == sent


def test_old_data_still_reads() -> None:
    old = customer_event("pm:1", Signup())
    old.kind, old.data = "payment_method_added", {"payment_method": "pm_old", "extra": 1}
    assert payload_of(old, PaymentMethodAdded).card == "pm_old"
    failed = customer_event("f", Activation(fact="x"))
    failed.kind = "stripe.invoice_payment_failed"
    failed.data = {"invoice_id": "in_1", "attempt_count": "2", "next_payment_attempt": None, "hard_decline": 0}
    got = payload_of(failed, InvoicePaymentFailed)
    assert (got.invoice_id, got.attempt_count, got.next_payment_attempt, got.hard_decline) == ("in_1", 2, None, False)


def test_reading_an_event_as_another_kind_is_refused() -> None:
    with pytest.raises(TypeError, match="no Activation"):
        payload_of(customer_event("s", Signup()), Activation)
