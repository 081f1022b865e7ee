"""The default card on the billing mirror (SQLite and PostgreSQL), from real localstripe
objects in signed-event shape: its brand, last 4 and expiry follow ``payment_method.*`` and
``customer.updated`` in either order, and the entity hears ``billing.default_card`` exactly
when the default card or its expiry changes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.billing.event_shapes import parse_event
from lifecycle.billing.handlers import apply_event
from lifecycle.billing.shapes import to_plain
from lifecycle.db import database, session_scope, upgrade
from lifecycle.models import CustomerCard, SignalOutbox
from tests.support.helpers import add_customer
from tests.support.stripe import make_event, new_customer_id


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(db_url)
    with database(db_url) as factory:
        yield factory


def apply(sessions: sessionmaker[Session], type_: str, obj: Any, created: int) -> None:
    with session_scope(sessions) as session:
        apply_event(session, parse_event(make_event(type_, obj, created=created)))


def card_events(sessions: sessionmaker[Session], cid: str) -> list[dict[str, Any]]:
    with sessions() as s:
        rows = s.scalars(select(SignalOutbox).where(
            SignalOutbox.customer_id == cid, SignalOutbox.kind == "billing.default_card"
        ).order_by(SignalOutbox.id))
        return [dict(r.data) for r in rows]


def card_row(sessions: sessionmaker[Session], cid: str) -> tuple[Any, ...] | None:
    with sessions() as s:
        row = s.get(CustomerCard, cid)
        return None if row is None else (row.stripe_payment_method_id, row.brand, row.last4, row.exp_month, row.exp_year)


def test_the_default_card_follows_stripe_in_either_order_and_the_entity_hears_each_change(
    sessions, stripe_client: stripe.StripeClient
) -> None:
    cid = new_customer_id()
    add_customer(sessions, cid)
    cus = stripe_client.v1.customers.create(params={"metadata": {"lifecycle_customer_id": cid}})
    pm = stripe_client.v1.payment_methods.create(params={
        "type": "card", "card": {"number": "4242424242424242", "exp_month": 3, "exp_year": 2031, "cvc": "123"}})
    stripe_client.v1.payment_methods.attach(pm.id, params={"customer": cus.id})
    cus = stripe_client.v1.customers.update(cus.id, params={"invoice_settings": {"default_payment_method": pm.id}})
    t = int(time.time())

    # customer.updated first: the card's details are not known yet, nobody is told
    apply(sessions, "customer.updated", cus, t)
    assert card_row(sessions, cid) == (pm.id, "", "", 0, 0)
    assert card_events(sessions, cid) == []
    # then payment_method.attached: the default card is complete, the entity hears it once
    attached = stripe_client.v1.payment_methods.retrieve(pm.id)
    apply(sessions, "payment_method.attached", attached, t)
    apply(sessions, "customer.updated", cus, t + 1)  # the same default again: nothing new
    assert card_row(sessions, cid) == (pm.id, "visa", "4242", 3, 2031)
    assert card_events(sessions, cid) == [
        {"payment_method_id": pm.id, "brand": "visa", "last4": "4242", "exp_month": 3, "exp_year": 2031}]

    # the card network sends a new expiry: the entity hears it; an older event changes nothing
    renewed = {**to_plain(attached), "card": {**to_plain(attached)["card"], "exp_year": 2035}}
    apply(sessions, "payment_method.automatically_updated", renewed, t + 5)
    apply(sessions, "payment_method.updated", attached, t + 2)
    assert card_row(sessions, cid) == (pm.id, "visa", "4242", 3, 2035)
    assert [e["exp_year"] for e in card_events(sessions, cid)] == [2031, 2035]

    # the default card is detached: no default card, and the entity hears that too
    apply(sessions, "payment_method.detached", {**renewed, "customer": None}, t + 6)
    assert card_row(sessions, cid) == (None, "", "", 0, 0)
    assert card_events(sessions, cid)[-1] == {"brand": "", "last4": "", "exp_month": 0, "exp_year": 0}


def test_a_payment_method_that_is_no_card_or_has_odd_fields_is_kept_out(sessions) -> None:
    cid = new_customer_id()
    add_customer(sessions, cid)
    t = int(time.time())
    apply(sessions, "payment_method.updated", {"id": "pm_sepa", "object": "payment_method", "type": "sepa_debit",
                                               "customer": None}, t)
    apply(sessions, "payment_method.updated", {"id": "pm_odd", "object": "payment_method", "type": "card",
                                               "card": {"exp_month": 13, "exp_year": 99999, "last4": "123456"}}, t)
    assert card_events(sessions, cid) == []


def test_the_same_card_and_default_written_by_eight_events_at_once_is_one_row_each(sessions) -> None:
    """payment_method.attached and customer.updated arrive together: a check-then-insert let
    all but one writer fail on the primary key (an insert-or-ignore now)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from lifecycle.billing.cards import record_card, set_default_card
    from lifecycle.billing.payment_shapes import CardRec
    from lifecycle.models import StripePaymentMethod

    add_customer(sessions, "race-1")
    rec = CardRec(id="pm_race", customer="cus_race", brand="visa", last4="4242", exp_month=12, exp_year=2030)
    gate = threading.Barrier(8)

    def write(i: int) -> None:
        gate.wait()
        with session_scope(sessions) as session:
            record_card(session, rec, 100 + i)
            set_default_card(session, "race-1", "pm_race", 100 + i)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))  # re-raises any writer's error
    with sessions() as s:
        assert [r.stripe_payment_method_id for r in s.scalars(select(StripePaymentMethod))] == ["pm_race"]
        [card] = s.scalars(select(CustomerCard)).all()
        assert (card.customer_id, card.stripe_payment_method_id, card.last4) == ("race-1", "pm_race", "4242")
