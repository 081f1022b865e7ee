"""The Stripe hand-over: for every kind, the event the customer's workflow hears carries
exactly the data it always has (built from typed payloads now, from dict literals before;
recorded histories and running workflows read these keys). The objects are real
localstripe objects, as in tests/test_stripe_webhooks.py."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from lifecycle.billing.handlers import HANDLED_EVENTS, handler_for
from lifecycle.billing.payment_shapes import is_hard_decline
from lifecycle.billing.shapes import parse_invoice, parse_subscription, to_plain
from lifecycle.billing.webhooks import process_event, record_event
from lifecycle.contracts.customer import CustomerEvent
from lifecycle.db import session_scope
from tests.support.stripe import add_card, make_event, subscribed

SOON = int(time.time()) + 3 * 86400


def _iso(value: dt.datetime | None) -> str | None:  # what the old hand-over wrote for times
    return value.isoformat() if value else None


def handed_over(
    session_factory, type: str, obj: Any, *, created: int | None = None, plan: str = "professional"
) -> CustomerEvent:
    """The event ``type`` around ``obj`` hands over, with the plan a workflow would start on."""
    event = make_event(type, obj, created=created)
    with session_scope(session_factory) as s:
        assert record_event(s, event)
    outcome = process_event(session_factory, event["id"])
    assert outcome.status == "processed" and outcome.handover is not None, (type, outcome)
    assert outcome.handover.plan == plan
    return outcome.handover.event


def expect(got: CustomerEvent, event_id: str, kind: str, data: dict[str, Any]) -> None:
    assert (got.event_id, got.kind) == (event_id, kind)
    assert got.data == data
    assert list(got.data) == list(data)  # the same keys, in the same order


async def test_subscription_hand_overs_carry_the_data_they_always_did(
    session_factory, stripe_acts, stripe_client
):
    _cid, res = await subscribed(session_factory, stripe_acts, stripe_client)
    sub = to_plain(stripe_client.v1.subscriptions.retrieve(res.stripe_subscription_id))
    sub["cancel_at_period_end"] = True
    rec = parse_subscription(sub)

    got = handed_over(session_factory, "customer.subscription.updated", sub, created=int(time.time()) + 5)
    expect(got, got.event_id, "stripe.subscription", {
        "stripe_subscription_id": rec.id,
        "stripe_customer_id": rec.customer,
        "status": rec.status,
        "plan": "professional",
        "interval": "month",
        "amount_cents": rec.amount_cents,
        "cancel_at_period_end": True,
        "current_period_end": _iso(rec.current_period_end),
        "event_type": "customer.subscription.updated",
        "adopted": False,
        "stripe_price_id": rec.plan_id,
    })
    assert got.event_id.startswith("stripe:evt_") and isinstance(got.data["current_period_end"], str)

    trial = {**sub, "trial_end": SOON}
    got = handed_over(session_factory, "customer.subscription.trial_will_end", trial, created=int(time.time()) + 6)
    expect(got, got.event_id, "stripe.trial_will_end", {
        "stripe_subscription_id": rec.id,
        "trial_end": _iso(parse_subscription(trial).trial_end),
    })
    assert got.data["trial_end"] is not None


async def test_invoice_hand_overs_carry_the_data_they_always_did(session_factory, stripe_acts, stripe_client):
    _cid, res = await subscribed(session_factory, stripe_acts, stripe_client)
    sub = stripe_client.v1.subscriptions.retrieve(res.stripe_subscription_id)
    inv = to_plain(stripe_client.v1.invoices.retrieve(str(sub.latest_invoice)))
    inv.update(
        attempt_count=2,
        next_payment_attempt=SOON,
        hosted_invoice_url="https://invoice.example/x",
        charge={"id": "ch_x", "object": "charge", "failure_code": "card_declined"},
    )
    rec = parse_invoice(inv)
    base = {
        "invoice_id": rec.id,
        "stripe_subscription_id": rec.subscription,
        "amount_due_cents": rec.amount_due_cents,
        "attempt_count": 2,
    }

    for paid in ("invoice.paid", "invoice.payment_succeeded"):
        got = handed_over(session_factory, paid, inv)
        expect(got, f"stripe:invoice_paid:{rec.id}", "stripe.invoice_paid",
               {**base, "amount_paid_cents": rec.amount_paid_cents})

    got = handed_over(session_factory, "invoice.payment_failed", inv)
    expect(got, got.event_id, "stripe.invoice_payment_failed", {
        **base,
        "failure_code": "card_declined",
        "hard_decline": is_hard_decline("card_declined"),
        "next_payment_attempt": _iso(rec.next_payment_attempt),
    })
    assert got.data["next_payment_attempt"] is not None

    bare = {**inv, "charge": None, "next_payment_attempt": None}  # nulls travel as nulls
    got = handed_over(session_factory, "invoice.payment_failed", bare)
    expect(got, got.event_id, "stripe.invoice_payment_failed",
           {**base, "failure_code": None, "hard_decline": False, "next_payment_attempt": None})

    got = handed_over(session_factory, "invoice.payment_action_required", inv)
    expect(got, got.event_id, "stripe.invoice_action_required",
           {**base, "hosted_invoice_url": "https://invoice.example/x", "hard_decline": True})

    got = handed_over(session_factory, "invoice.upcoming", inv)
    expect(got, got.event_id, "stripe.invoice_upcoming", {**base, "period_end": _iso(rec.period_end)})

    preview = {k: v for k, v in inv.items() if k != "id"}  # Stripe's upcoming invoice has no id
    got = handed_over(session_factory, "invoice.upcoming", preview)
    expect(got, got.event_id, "stripe.invoice_upcoming", {
        "stripe_subscription_id": rec.subscription,
        "amount_due_cents": rec.amount_due_cents,
        "period_end": _iso(rec.period_end),
        "next_payment_attempt": _iso(rec.next_payment_attempt),
    })


async def test_checkout_and_card_hand_overs_carry_the_data_they_always_did(
    session_factory, stripe_acts, stripe_client
):
    cid, res = await subscribed(session_factory, stripe_acts, stripe_client)
    sub = stripe_client.v1.subscriptions.retrieve(res.stripe_subscription_id)
    stripe_customer = str(sub.customer)

    session = {"object": "checkout.session", "id": "cs_test_1", "client_reference_id": cid,
               "customer": stripe_customer, "subscription": sub.id, "mode": "subscription"}
    got = handed_over(session_factory, "checkout.session.completed", session)
    expect(got, got.event_id, "stripe.checkout_completed",
           {"stripe_subscription_id": sub.id, "stripe_customer_id": stripe_customer, "mode": "subscription"})

    pm = stripe_client.v1.payment_methods.retrieve(add_card(stripe_client, stripe_customer, default=False))
    got = handed_over(session_factory, "payment_method.attached", pm)
    expect(got, got.event_id, "payment_method_added", {"payment_method_id": pm.id})


def test_every_handled_event_has_a_handler_and_others_are_ignored() -> None:
    assert all(handler_for(t) is not None for t in HANDLED_EVENTS)
    for unused in ("balance.available", "customer.deleted", "invoiceitem.created", "checkout.session.expired"):
        assert handler_for(unused) is None
