"""The card-update page's Stripe side: a Billing Portal session, or our own card form's
SetupIntent and what follows it (attach, make default, pay every open invoice).

The new card becomes the customer's default (``invoice_settings.default_payment_method``)
and that of every live subscription with a default of its own: Stripe charges a
subscription's ``default_payment_method`` before the customer's, so left alone the next
invoice, and any retry, would charge the old card.

Synchronous (the page runs it in a threadpool). No database transaction is held across a
Stripe call: the customer's Stripe id is read in one short session, Stripe is called, then
what Stripe answered is written in one transaction (the card on the mirror, the invoices,
the timeline, and the events for the customer's workflow in the signal outbox). Every
Stripe write sends an idempotency key derived from the SetupIntent, so a resubmitted form
attaches, defaults and charges nothing twice (an invoice already paid is never paid again:
only open ones are paid).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

import stripe
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.billing.cards import record_card, set_default_card
from lifecycle.billing.charges import note_attempt
from lifecycle.billing.client import LOGGER_NAME, now_ts
from lifecycle.billing.mirror import upsert_invoice
from lifecycle.billing.payment_shapes import CardRec, parse_card, payment_method_charged
from lifecycle.billing.shapes import InvoiceRec, parse_invoice, to_plain
from lifecycle.contracts.events import PaymentMethodAdded, customer_event
from lifecycle.contracts.stages import is_live
from lifecycle.db import add_timeline_event, session_scope
from lifecycle.models import Customer
from lifecycle.signal_outbox import enqueue

log = logging.getLogger(LOGGER_NAME)


class CardUpdateRefused(ValueError):
    """The request cannot be carried out (no such customer, a SetupIntent that is not this
    customer's or did not succeed); the message is for the customer."""

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class InvoiceLine:
    id: str
    amount_cents: int
    currency: str
    status: str  # paid | open (still: the card was declined) | ...
    failure_message: str | None = None


@dataclass
class CardUpdated:
    card: CardRec
    paid: list[InvoiceLine] = field(default_factory=list)
    declined: list[InvoiceLine] = field(default_factory=list)


def stripe_customer_of(sessions: sessionmaker[Session], customer_id: str) -> tuple[str, str]:
    """(Stripe customer id, email) of our customer; refused when unknown or not in Stripe."""
    with sessions() as session:
        row = session.get(Customer, customer_id)
        if row is None:
            raise CardUpdateRefused("We could not find your account. Please contact support.", 404)
        if not row.stripe_customer_id:
            raise CardUpdateRefused(
                "There is no billing account for you yet, so there is no card to update.", 404
            )
        return row.stripe_customer_id, row.email


def open_invoices(client: stripe.StripeClient, stripe_customer_id: str) -> list[InvoiceRec]:
    found = client.v1.invoices.list(params={"customer": stripe_customer_id, "limit": 100})
    recs = [parse_invoice(to_plain(inv)) for inv in found.auto_paging_iter()]
    return [r for r in recs if r.status == "open" and r.amount_due_cents > 0]


def portal_url(client: stripe.StripeClient, stripe_customer_id: str, return_url: str) -> str:
    """A Billing Portal session that goes straight to updating the payment method (real Stripe)."""
    session = client.v1.billing_portal.sessions.create(params={
        "customer": stripe_customer_id,
        "return_url": return_url,
        "flow_data": {
            "type": "payment_method_update",
            "after_completion": {"type": "redirect", "redirect": {"return_url": return_url}},
        },
    })
    return str(session.url)


def default_subscriptions(
    client: stripe.StripeClient, stripe_customer_id: str, payment_method_id: str, key: str
) -> list[str]:
    """Every live subscription of the customer with a default payment method of its own (it
    overrides the customer's) gets ``payment_method_id`` as that default; the ids changed.
    A subscription without one already follows the customer's default."""
    changed = []
    found = client.v1.subscriptions.list(params={"customer": stripe_customer_id, "limit": 100})
    for sub in found.auto_paging_iter():
        raw = to_plain(sub)
        own = payment_method_charged({}, raw, None)
        if not is_live(raw.get("status")) or own in (None, payment_method_id):
            continue
        client.v1.subscriptions.update(
            str(raw["id"]), params={"default_payment_method": payment_method_id},
            options={"idempotency_key": f"{key}:default:{raw['id']}"},
        )
        changed.append(str(raw["id"]))
    return changed


def start_setup(client: stripe.StripeClient, stripe_customer_id: str) -> str:
    """A SetupIntent for our own card form; its client secret is what the page confirms."""
    intent = client.v1.setup_intents.create(
        params={"customer": stripe_customer_id, "usage": "off_session"}
    )
    return str(intent.client_secret)


def apply_setup(
    client: stripe.StripeClient, sessions: sessionmaker[Session], customer_id: str, setup_intent_id: str
) -> CardUpdated:
    """The card the customer confirmed becomes their default; every open invoice is paid with it."""
    stripe_customer_id, _ = stripe_customer_of(sessions, customer_id)
    try:
        intent = client.v1.setup_intents.retrieve(setup_intent_id)
    except stripe.InvalidRequestError:
        raise CardUpdateRefused("That card form has expired. Please enter your card again.") from None
    if getattr(intent, "customer", None) != stripe_customer_id:
        raise CardUpdateRefused("That card form belongs to another account. Please open your own link.")
    if intent.status != "succeeded" or not intent.payment_method:
        raise CardUpdateRefused("The card was not confirmed. Please enter it again.")
    pm_id = str(intent.payment_method if isinstance(intent.payment_method, str) else intent.payment_method.id)
    key = f"card-page:{setup_intent_id}"
    pm = client.v1.payment_methods.retrieve(pm_id)
    if getattr(pm, "customer", None) != stripe_customer_id:
        pm = client.v1.payment_methods.attach(
            pm_id, params={"customer": stripe_customer_id}, options={"idempotency_key": f"{key}:attach"}
        )
    client.v1.customers.update(
        stripe_customer_id,
        params={"invoice_settings": {"default_payment_method": pm_id}},
        options={"idempotency_key": f"{key}:default"},
    )
    card = parse_card(to_plain(pm))
    if card is None:
        raise CardUpdateRefused("Only cards can be added on this page.")
    default_subscriptions(client, stripe_customer_id, pm_id, key)

    invoices: list[InvoiceRec] = []
    result = CardUpdated(card=card)
    for inv in open_invoices(client, stripe_customer_id):
        with session_scope(sessions) as session:  # before the charge: not a retry of Stripe's own
            note_attempt(session, f"{key}:pay:{inv.id}", inv.id)
        try:
            client.v1.invoices.pay(inv.id, options={"idempotency_key": f"{key}:pay:{inv.id}"})
        except stripe.CardError as exc:  # real Stripe raises on a decline (localstripe does not)
            log.info("card page: invoice %s declined: %s", inv.id, exc.user_message)
        after = parse_invoice(to_plain(client.v1.invoices.retrieve(inv.id, params={"expand": ["payment_intent"]})))
        invoices.append(after)
        line = InvoiceLine(after.id, after.amount_due_cents, after.currency, after.status,
                           None if after.status == "paid" else (after.failure_message or "The card was declined."))
        (result.paid if after.status == "paid" else result.declined).append(line)

    _record(sessions, customer_id, setup_intent_id, card, invoices, result)
    return result


def _record(
    sessions: sessionmaker[Session], customer_id: str, setup_intent_id: str, card: CardRec,
    invoices: list[InvoiceRec], result: CardUpdated,
) -> None:
    """What Stripe now holds, in one transaction: the mirror, the timeline, the workflow's events."""
    version = now_ts()
    with session_scope(sessions) as session:
        record_card(session, card, version)
        set_default_card(session, customer_id, card.id, version)  # queues billing.default_card
        for inv in invoices:
            upsert_invoice(session, inv, version)
        row = session.get(Customer, customer_id)
        if row is not None:
            row.payment_method_on_file = True
        event_id = f"payment_method:{customer_id}:{card.id}"
        enqueue(session, customer_id, customer_event(event_id, PaymentMethodAdded(payment_method_id=card.id)))
        detail: dict[str, Any] = {
            "source": "card-update page",
            "setup_intent": setup_intent_id,
            "payment_method": card.id,
            "card": f"{card.brand} {card.last4} {card.exp_month:02d}/{card.exp_year}",
            "paid": [{"invoice": i.id, "amount_cents": i.amount_cents} for i in result.paid],
            "declined": [{"invoice": i.id, "amount_cents": i.amount_cents, "reason": i.failure_message}
                         for i in result.declined],
        }
        add_timeline_event(
            session, key=f"card_updated:{customer_id}:{setup_intent_id}", customer_id=customer_id,
            kind="card_updated", at=dt.datetime.now(dt.UTC), detail=detail,
        )
