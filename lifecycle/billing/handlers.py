"""What each Stripe event does: one handler per event type, looked up by :func:`apply_event`.

A handler applies its event to the mirror and returns ``(status, handover)``: the status
the event log records (``processed``: used, ``ignored``: acknowledged, nothing to do) and
what the customer's workflow must hear, if anything, built from a typed payload
(``lifecycle.contracts.events``). A type missing from :data:`HANDLERS` is looked up by
prefix in :data:`HANDLERS_BY_PREFIX`; a type in neither is ignored. Never calls Stripe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from lifecycle.billing.cards import default_card, record_card, set_default_card
from lifecycle.billing.event_shapes import EventRec
from lifecycle.billing.mirror import (
    MirrorResult,
    resolve_customer,
    upsert_invoice,
    upsert_payment,
    upsert_subscription,
)
from lifecycle.billing.payment_shapes import is_hard_decline, parse_card, parse_payment
from lifecycle.billing.prices import record_price, record_product
from lifecycle.billing.shapes import (
    InvoiceRec,
    SubscriptionRec,
    parse_customer,
    parse_invoice,
    parse_price,
    parse_subscription,
)
from lifecycle.contracts import catalog
from lifecycle.contracts.customer import CustomerEvent
from lifecycle.contracts.events import (
    CheckoutCompleted,
    EventPayload,
    InvoiceActionRequired,
    InvoicePaid,
    InvoicePaymentFailed,
    InvoiceUncollectible,
    InvoiceUpcoming,
    InvoiceVoided,
    PaymentMethodAdded,
    StripeSubscription,
    StripeTrialWillEnd,
    customer_event,
)
from lifecycle.models import Customer, StripeEvent

# The webhook events the engine acts on (the list to enable in the Stripe dashboard).
HANDLED_EVENTS = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.trial_will_end",
    "invoice.created",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.payment_action_required",
    "invoice.upcoming",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "invoice.updated",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.succeeded",
    "charge.failed",
    "checkout.session.completed",
    "payment_method.attached",
    "payment_method.updated",
    "payment_method.automatically_updated",
    "payment_method.detached",
    "setup_intent.succeeded",
    "customer.created",
    "customer.updated",
    # the catalog as Stripe has it: products and prices whose metadata may name a tier
    "product.created",
    "product.updated",
    "price.created",
    "price.updated",
    "plan.created",
    "plan.updated",
)

PROCESSED = "processed"
IGNORED = "ignored"


@dataclass
class Handover:
    """What the customer's workflow must hear about an event (signal-with-start)."""

    customer_id: str
    plan: str
    event: CustomerEvent


Outcome = tuple[str, Handover | None]
Handler = Callable[[Session, EventRec], Outcome]


def apply_event(session: Session, ev: EventRec) -> tuple[str, Handover | None]:
    """Apply one event to the mirror; returns (status, what to tell the workflow)."""
    handler = handler_for(ev.type)
    return handler(session, ev) if handler is not None else (IGNORED, None)


def handler_for(event_type: str) -> Handler | None:
    found = HANDLERS.get(event_type)
    if found is None:
        found = next((h for p, h in HANDLERS_BY_PREFIX.items() if event_type.startswith(p)), None)
    return found


# --- helpers ----------------------------------------------------------------------------


def _customer_plan(session: Session, customer_id: str) -> str:
    """The plan a workflow not yet running starts with: the customer's (``NO_TIER`` for one
    on an unmapped price)."""
    row = session.get(Customer, customer_id)
    if row is None:
        return catalog.DEFAULT_TRIAL_PLAN
    return row.plan_code or catalog.NO_TIER


def _tell(session: Session, customer_id: str, event: CustomerEvent, plan: str | None = None) -> Outcome:
    """Hand ``event`` over; ``plan`` (default: the customer's) starts a workflow not running."""
    return PROCESSED, Handover(customer_id, plan if plan else _customer_plan(session, customer_id), event)


def _event(event_id: str, payload: EventPayload, *, unsent: tuple[str, ...] = ()) -> CustomerEvent:
    """The workflow event for ``payload``; ``unsent``: payload fields this hand-over has
    never carried (kept off so the data stays what workflows and histories have seen)."""
    event = customer_event(event_id, payload)
    for key in unsent:
        event.data.pop(key, None)
    return event


def _note(session: Session, event_id: str, note: str | None) -> None:
    """What ops should know about a processed event (shown by `lifecycle stripe events`)."""
    row = session.get(StripeEvent, event_id)
    if row is not None:
        row.note = note


# --- customer.subscription.* ------------------------------------------------------------


def _mirror_subscription(session: Session, ev: EventRec) -> tuple[SubscriptionRec, MirrorResult]:
    rec = parse_subscription(ev.object)
    res = upsert_subscription(session, rec, ev.created, source_event_id=ev.id)
    _note(session, ev.id, (
        f"unmapped price {res.unmapped_price}: no tier (see `lifecycle stripe prices`)"
        if res.unmapped_price else None
    ))
    return rec, res


def on_subscription(session: Session, ev: EventRec) -> Outcome:
    """created, updated, deleted, ...: the workflow hears the subscription as mirrored."""
    rec, res = _mirror_subscription(session, ev)
    if res.customer_id is None:
        return PROCESSED, None
    if not res.applied:
        return PROCESSED, None  # older than what we know: tell nobody
    return _tell(session, res.customer_id, _event(f"stripe:{ev.id}", StripeSubscription(
        stripe_subscription_id=rec.id,
        stripe_customer_id=rec.customer,
        status=rec.status,
        plan=res.plan,
        interval=res.interval,
        amount_cents=rec.amount_cents,
        cancel_at_period_end=rec.cancel_at_period_end,
        current_period_end=rec.current_period_end,
        event_type=ev.type,
        adopted=res.adopted,
        stripe_price_id=rec.plan_id,
        interval_count=res.interval_count,
    ), unsent=() if res.interval_count != 1 else ("interval_count",)), plan=res.plan)


def on_trial_will_end(session: Session, ev: EventRec) -> Outcome:
    rec, res = _mirror_subscription(session, ev)
    if res.customer_id is None:
        return PROCESSED, None
    return _tell(session, res.customer_id, _event(
        f"stripe:{ev.id}", StripeTrialWillEnd(stripe_subscription_id=rec.id, trial_end=rec.trial_end)
    ))


# --- invoice.* --------------------------------------------------------------------------

InvoiceTell = Callable[[EventRec, InvoiceRec], CustomerEvent]


def invoice_handler(tell: InvoiceTell | None) -> Handler:
    """Mirror the invoice, then tell its customer's workflow what ``tell`` builds (None:
    nothing). An invoice event without an invoice id is ignored."""

    def handle(session: Session, ev: EventRec) -> Outcome:
        if not ev.object.get("id"):
            resolve_customer(session, ev.object.get("customer"), {})
            return IGNORED, None
        rec = parse_invoice(ev.object)
        cid = upsert_invoice(session, rec, ev.created).customer_id
        if cid is None or tell is None:
            return PROCESSED, None
        return _tell(session, cid, tell(ev, rec))

    return handle


def _facts(rec: InvoiceRec) -> dict[str, Any]:
    """What every invoice hand-over says (the fields of InvoiceFacts)."""
    return {
        "invoice_id": rec.id,
        "stripe_subscription_id": rec.subscription,
        "amount_due_cents": rec.amount_due_cents,
        "attempt_count": rec.attempt_count,
    }


def invoice_paid(ev: EventRec, rec: InvoiceRec) -> CustomerEvent:
    # invoice.paid and invoice.payment_succeeded mean the same thing: one id, so the
    # workflow hears it once.
    return _event(f"stripe:invoice_paid:{rec.id}", InvoicePaid(
        **_facts(rec), amount_paid_cents=rec.amount_paid_cents,
    ))


def invoice_payment_failed(ev: EventRec, rec: InvoiceRec) -> CustomerEvent:
    return _event(f"stripe:{ev.id}", InvoicePaymentFailed(
        **_facts(rec),
        failure_code=rec.failure_code,
        hard_decline=is_hard_decline(rec.failure_code),
        next_payment_attempt=rec.next_payment_attempt,
    ))


def invoice_action_required(ev: EventRec, rec: InvoiceRec) -> CustomerEvent:
    return _event(f"stripe:{ev.id}", InvoiceActionRequired(
        **_facts(rec), hosted_invoice_url=rec.hosted_invoice_url, hard_decline=True,
    ))


def invoice_voided(ev: EventRec, rec: InvoiceRec) -> CustomerEvent:
    # one id per invoice: a voided invoice leaves dunning once
    return _event(f"stripe:invoice_voided:{rec.id}", InvoiceVoided(**_facts(rec)))


def invoice_uncollectible(ev: EventRec, rec: InvoiceRec) -> CustomerEvent:
    return _event(f"stripe:invoice_uncollectible:{rec.id}", InvoiceUncollectible(**_facts(rec)))


def invoice_upcoming(ev: EventRec, rec: InvoiceRec) -> CustomerEvent:
    return _event(
        f"stripe:{ev.id}",
        InvoiceUpcoming(**_facts(rec), period_end=rec.period_end),
        unsent=("next_payment_attempt",),
    )


_upcoming_invoice = invoice_handler(invoice_upcoming)


def on_invoice_upcoming(session: Session, ev: EventRec) -> Outcome:
    """Usually a preview of the next invoice, without an id: nothing to mirror, the
    customer's workflow hears it if the customer is ours."""
    if ev.object.get("id"):
        return _upcoming_invoice(session, ev)
    cid = resolve_customer(session, ev.object.get("customer"), {})
    if not cid:
        return IGNORED, None
    rec = parse_invoice({**ev.object, "id": "upcoming"})
    return _tell(session, cid, _event(
        f"stripe:{ev.id}",
        InvoiceUpcoming(
            stripe_subscription_id=rec.subscription,
            amount_due_cents=rec.amount_due_cents,
            period_end=rec.period_end,
            next_payment_attempt=rec.next_payment_attempt,
        ),
        unsent=("invoice_id", "attempt_count"),
    ))


# --- payments, checkout, cards, customers, the catalog ------------------------------------


def on_payment(session: Session, ev: EventRec) -> Outcome:
    """payment_intent.* and charge.*: an outcome is mirrored; the workflow hears invoices."""
    if ev.type.endswith((".succeeded", ".payment_failed", ".failed", ".processing", ".canceled")):
        upsert_payment(session, parse_payment(ev.object))
        return PROCESSED, None
    return IGNORED, None


def on_checkout_completed(session: Session, ev: EventRec) -> Outcome:
    obj = ev.object
    ref = obj.get("client_reference_id")
    stripe_customer = obj.get("customer")
    row = session.get(Customer, ref) if ref else None
    cid: str | None
    if row is not None:
        cid = row.id
        if row.stripe_customer_id is None and stripe_customer:
            row.stripe_customer_id = str(stripe_customer)
    else:
        cid = resolve_customer(session, stripe_customer, dict(obj.get("metadata") or {}))
    if cid is None:
        return PROCESSED, None
    return _tell(session, cid, _event(f"stripe:{ev.id}", CheckoutCompleted(
        stripe_subscription_id=obj.get("subscription"),
        stripe_customer_id=stripe_customer,
        mode=obj.get("mode"),
    )))


def _card_added(session: Session, ev: EventRec, stripe_customer: Any, payment_method_id: str | None) -> Outcome:
    """A card is on file (attached, saved by a SetupIntent, or made the default): the
    customer's workflow hears ``payment_method_added`` with its id. The entity tells the
    trial (a payment method on file) and a running dunning, which retries the open invoices
    with it if it is the card they are charged with (engine mode; once per card)."""
    cid = resolve_customer(session, stripe_customer, {})
    if cid is None:
        return PROCESSED, None
    row = session.get(Customer, cid)
    if row is not None:
        row.payment_method_on_file = True
    return _tell(session, cid, _event(
        f"stripe:{ev.id}",
        PaymentMethodAdded(payment_method_id=payment_method_id),
        unsent=("payment_method",),  # the key old histories carry; never sent with the id
    ))


def on_payment_method_attached(session: Session, ev: EventRec) -> Outcome:
    """attached, and automatically_updated (Stripe's card account updater: the card network
    gave the saved card a new number or expiry, same payment method id): a card change, so
    a running dunning retries the open invoices it is charged for, a hard-declined one too."""
    _record_card(session, ev.object, ev.created)
    return _card_added(session, ev, ev.object.get("customer"), ev.object.get("id"))


def on_setup_intent_succeeded(session: Session, ev: EventRec) -> Outcome:
    """A card saved for later payments (our card page, the product's own form, the Billing
    Portal): like an attach. A SetupIntent without a customer or a payment method is ignored."""
    pm = ev.object.get("payment_method")
    pm_id = pm.get("id") if isinstance(pm, dict) else pm
    if isinstance(pm, dict):
        _record_card(session, pm, ev.created)
    if not ev.object.get("customer") or not pm_id or ev.object.get("status", "succeeded") != "succeeded":
        return IGNORED, None
    return _card_added(session, ev, ev.object.get("customer"), str(pm_id))


def _record_card(session: Session, obj: Any, version_ts: int) -> None:
    """Keep a card's brand, last 4 and expiry (pre-dunning); other payment methods do not expire."""
    card = parse_card(obj) if isinstance(obj, dict) else None
    if card is not None:
        record_card(session, card, version_ts)


def on_payment_method(session: Session, ev: EventRec) -> Outcome:
    """updated, detached: the card's details, and so the default card's expiry, as Stripe
    has them now."""
    _record_card(session, ev.object, ev.created)
    return PROCESSED, None


def on_customer(session: Session, ev: EventRec) -> Outcome:
    """created, updated: the link to our customer, the default card on the mirror; a new
    default payment method is handed over as ``payment_method_added`` (see _card_added)."""
    rec = parse_customer(ev.object)
    cid = resolve_customer(session, rec.id, rec.metadata)  # links by metadata
    new_default = None
    if cid is not None and not rec.deleted:
        new_default = _new_default(session, cid, ev, rec.default_payment_method)
        default = (ev.object.get("invoice_settings") or {}).get("default_payment_method")
        _record_card(session, default, ev.created)  # when it came expanded
        set_default_card(session, cid, rec.default_payment_method, ev.created)
    if cid is not None and rec.email:
        row = session.get(Customer, cid)
        if row is not None and not row.email:
            row.email = rec.email  # a customer adopted from Stripe learns its email
    if new_default is not None:
        return _card_added(session, ev, rec.id, new_default)
    return PROCESSED, None


def _new_default(session: Session, customer_id: str, ev: EventRec, default: str | None) -> str | None:
    """The default payment method if this ``customer.updated`` changed it, else None.

    Stripe says what changed in ``data.previous_attributes`` (``invoice_settings`` with the
    old ``default_payment_method``, or the legacy ``default_source``); localstripe sends no
    previous attributes, so without them the default is compared with the mirror's."""
    if ev.type != "customer.updated" or default is None:
        return None
    prev = ev.previous_attributes
    if prev:
        settings = prev.get("invoice_settings")
        if isinstance(settings, dict) and "default_payment_method" in settings:
            old = settings["default_payment_method"]
        elif "default_source" in prev and not (ev.object.get("invoice_settings") or {}).get("default_payment_method"):
            old = prev["default_source"]
        else:
            return None  # something else changed
        old_id = old.get("id") if isinstance(old, dict) else old
        return default if old_id != default else None
    known = default_card(session, customer_id)
    return default if known is None or known.payment_method_id != default else None


def on_product(session: Session, ev: EventRec) -> Outcome:
    record_product(session, ev.object)
    return PROCESSED, None


def on_price(session: Session, ev: EventRec) -> Outcome:
    """price.* and plan.* (the legacy Plans API): remember it and the tier it maps to."""
    price = parse_price(ev.object, kind=ev.type.split(".", 1)[0])
    if price is not None:
        record_price(session, price, event_id=ev.id)
    return PROCESSED, None


HANDLERS: dict[str, Handler] = {
    "customer.subscription.trial_will_end": on_trial_will_end,
    "invoice.paid": invoice_handler(invoice_paid),
    "invoice.payment_succeeded": invoice_handler(invoice_paid),
    "invoice.payment_failed": invoice_handler(invoice_payment_failed),
    "invoice.payment_action_required": invoice_handler(invoice_action_required),
    "invoice.voided": invoice_handler(invoice_voided),
    "invoice.marked_uncollectible": invoice_handler(invoice_uncollectible),
    "invoice.upcoming": on_invoice_upcoming,
    "checkout.session.completed": on_checkout_completed,
    "payment_method.attached": on_payment_method_attached,
    "payment_method.updated": on_payment_method,
    "payment_method.automatically_updated": on_payment_method_attached,
    "payment_method.detached": on_payment_method,
    "setup_intent.succeeded": on_setup_intent_succeeded,
    "customer.created": on_customer,
    "customer.updated": on_customer,
    "product.created": on_product,
    "product.updated": on_product,
    "price.created": on_price,
    "price.updated": on_price,
    "plan.created": on_price,
    "plan.updated": on_price,
}

# Types not in HANDLERS, by prefix (the prefixes do not overlap).
HANDLERS_BY_PREFIX: dict[str, Handler] = {
    "customer.subscription.": on_subscription,
    "invoice.": invoice_handler(None),  # created, finalized, voided, ...: mirrored only
    "payment_intent.": on_payment,
    "charge.": on_payment,
}
