"""The billing mirror under Stripe's concurrent webhooks (SQLite and PostgreSQL): events
for one invoice or one payment arrive at once; each write is an insert-or-ignore, so every
writer succeeds and there is one row (a check-then-insert failed all but one on the key)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.billing.mirror import upsert_invoice, upsert_payment
from lifecycle.billing.payment_shapes import PaymentRec
from lifecycle.billing.shapes import InvoiceRec
from lifecycle.db import database, session_scope, upgrade
from lifecycle.models import Invoice, Payment


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(db_url)
    with database(db_url) as factory:
        yield factory


def at_once(sessions: sessionmaker[Session], write: Callable[[Session, int], object], n: int = 8) -> None:
    gate = threading.Barrier(n)

    def one(i: int) -> None:
        gate.wait()
        with session_scope(sessions) as session:
            write(session, i)

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(one, range(n)))  # re-raises any writer's error


def test_eight_events_of_one_invoice_at_once_leave_one_row_in_the_newest_state(sessions) -> None:
    def rec(i: int) -> InvoiceRec:
        return InvoiceRec(
            id="in_race", customer=None, customer_email=None, subscription=None, status="open",
            amount_due_cents=9900, amount_paid_cents=0, currency="usd", attempt_count=i, period_start=None,
            period_end=None, paid_at=None, created=1, billing_reason=None, charge=None, payment_intent=None,
        )

    at_once(sessions, lambda s, i: upsert_invoice(s, rec(i), 100 + i))
    with sessions() as s:
        [row] = s.scalars(select(Invoice)).all()
        assert (row.stripe_invoice_id, row.status, row.amount_due_cents) == ("in_race", "open", 9900)


def test_eight_events_of_one_payment_at_once_leave_one_row(sessions) -> None:
    def rec(i: int) -> PaymentRec:
        return PaymentRec(id="pi_race", object="payment_intent", customer=None, invoice="in_race",
                          amount_cents=9900, currency="usd", status="requires_payment_method",
                          failure_code="card_declined", failure_message="declined", created=1 + i)

    at_once(sessions, lambda s, i: upsert_payment(s, rec(i)))
    with sessions() as s:
        [row] = s.scalars(select(Payment)).all()
        assert (row.stripe_id, row.stripe_invoice_id, row.failure_code) == ("pi_race", "in_race", "card_declined")


def test_eight_events_of_one_dashboard_subscription_at_once_adopt_one_customer_and_one_row(sessions) -> None:
    from lifecycle.billing.mirror import upsert_subscription
    from lifecycle.billing.shapes import SubscriptionRec
    from lifecycle.models import Customer, Subscription

    rec = SubscriptionRec(
        id="sub_race", customer="cus_race", status="active", plan_id=None, interval=None, amount_cents=0,
        currency="usd", current_period_start=None, current_period_end=None, cancel_at_period_end=False,
        cancel_at=None, canceled_at=None, ended_at=None, trial_end=None, latest_invoice=None, created=1,
    )
    at_once(sessions, lambda s, i: upsert_subscription(s, rec, 100 + i))
    with sessions() as s:
        assert [c.id for c in s.scalars(select(Customer))] == ["cus_race"]
        [row] = s.scalars(select(Subscription)).all()
        assert (row.stripe_subscription_id, row.customer_id, row.status) == ("sub_race", "cus_race", "active")


def test_eight_events_naming_one_price_at_once_record_one_price_and_one_product(sessions) -> None:
    from lifecycle.billing.prices import record_price
    from lifecycle.billing.shapes import PriceRec
    from lifecycle.models import StripePrice, StripeProduct

    price = PriceRec(id="price_race", object="price", product_id="prod_race", product_metadata={"tier": "pro"},
                     lookup_key=None, nickname=None, metadata={}, interval="month", interval_count=1,
                     unit_amount_cents=4900, currency="usd")
    at_once(sessions, lambda s, i: record_price(s, price, event_id=f"evt_{i}"))
    with sessions() as s:
        assert [p.id for p in s.scalars(select(StripePrice))] == ["price_race"]
        assert [p.id for p in s.scalars(select(StripeProduct))] == ["prod_race"]
