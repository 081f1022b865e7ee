"""The hard-decline guard (:func:`lifecycle.billing.charges.hard_declined_with`) on both
databases: which card events lift it, read by payment method id in SQL (a JSON path on
``stripe_events.payload``). The end-to-end path (webhooks, dunning, localstripe's charges)
is in tests/test_dunning_new_card.py."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.billing.charges import hard_declined_with
from lifecycle.db import make_engine, make_session_factory, session_scope
from lifecycle.models import Payment, StripeEvent

T0 = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


def _event(sessions: sessionmaker[Session], n: int, type: str, pm: str, previous: dict[str, Any] | None,
           at: dt.datetime = T0) -> None:
    data: dict[str, Any] = {"object": {"id": pm, "object": "payment_method", "type": "card"}}
    if previous is not None:
        data["previous_attributes"] = previous
    with session_scope(sessions) as s:
        s.add(StripeEvent(id=f"evt_{n}", type=type, created=int(at.timestamp()),
                          payload={"id": f"evt_{n}", "type": type, "data": data}))


def test_only_a_change_of_the_card_itself_lifts_a_hard_decline(sessions):
    with session_scope(sessions) as s:
        s.add(Payment(stripe_id="pi_1", stripe_invoice_id="in_1", status="failed", failure_code="stolen_card",
                      payment_method_id="pm_1", created_at=T0))

    def guard() -> str | None:
        with sessions() as s:
            return hard_declined_with(s, "in_1", "pm_1")

    assert guard() == "stolen_card"
    _event(sessions, 1, "payment_method.updated", "pm_1", {"billing_details": {"address": {"line1": None}}})
    _event(sessions, 2, "payment_method.updated", "pm_1", {"metadata": {}})
    _event(sessions, 3, "payment_method.updated", "pm_1", None)
    _event(sessions, 4, "payment_method.updated", "pm_2", {"card": {"exp_year": 2030}})  # another card
    _event(sessions, 5, "payment_method.automatically_updated", "pm_2", None)
    _event(sessions, 6, "payment_method.updated", "pm_1", {"card": {"exp_year": 2030}}, T0 - dt.timedelta(1))
    assert guard() == "stolen_card"
    _event(sessions, 7, "payment_method.updated", "pm_1", {"card": {"exp_month": 3, "exp_year": 2030}})
    assert guard() is None


def test_the_card_account_updater_always_lifts_a_hard_decline(sessions):
    with session_scope(sessions) as s:
        s.add(Payment(stripe_id="pi_1", stripe_invoice_id="in_1", status="failed", failure_code="expired_card",
                      payment_method_id="pm_1", created_at=T0))
    _event(sessions, 1, "payment_method.automatically_updated", "pm_1", None)
    with sessions() as s:
        assert hard_declined_with(s, "in_1", "pm_1") is None
