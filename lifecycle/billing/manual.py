"""Manual payment backup: ops mark an invoice paid out of band (a bank transfer, a cheque).

``lifecycle invoice mark-paid INVOICE --reason TEXT`` and ``POST /v1/invoices/{id}/mark-paid``
both call :func:`mark_paid`: it asks Stripe for the invoice (no database transaction is
open meanwhile), refuses an unknown, already paid, void or draft one with the reason,
writes the intent to the audit trail (``lifecycle.audit``), pays it in Stripe with
``paid_out_of_band`` (idempotency key per invoice), writes the outcome, and in one
transaction mirrors the invoice, records who and why (``manual_payments``), puts it on the
customer's timeline and queues the ``billing.invoice_marked_paid`` event for the
customer's workflow (the signal outbox): a running dunning ends as recovered "manual".

localstripe cannot take ``paid_out_of_band`` (its ``/v1/invoices/{id}/pay`` accepts no
parameter and answers 500 to one). With ``LIFECYCLE_STRIPE_LOCALSTRIPE_COMPAT`` the
invoice is therefore marked paid in our mirror only, and the result says so
(``stripe_updated: false``); against Stripe it is always paid in Stripe first.
"""

from __future__ import annotations

import datetime as dt
import getpass
import uuid
from dataclasses import dataclass
from typing import Any

import stripe
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lifecycle import audit
from lifecycle.audit import INTENT, OUTCOME
from lifecycle.billing.client import now_ts
from lifecycle.billing.mirror import resolve_customer, upsert_invoice
from lifecycle.billing.shapes import InvoiceRec, parse_invoice, to_plain
from lifecycle.contracts.events import InvoiceMarkedPaid, customer_event
from lifecycle.contracts.ops import AuditEntryInput
from lifecycle.db import add_timeline_event, insert_ignore, session_scope
from lifecycle.models import ManualPayment
from lifecycle.signal_outbox import enqueue

MARK_PAID = "mark-paid"  # the audit trail's action


class MarkPaidRefused(Exception):
    """Marking refused; ``status`` is the HTTP answer (404 unknown, 409 not payable, 422 input)."""

    def __init__(self, reason: str, status: int = 409) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass
class MarkPaidResult:
    invoice_id: str
    customer_id: str | None
    amount_cents: int
    actor: str
    reason: str
    stripe_updated: bool  # false: localstripe (cannot pay out of band), mirror only
    event_id: str


def api_actor(key_name: str) -> str:
    """Who an API call is: the API key's name (``LIFECYCLE_API_KEYS`` name:key; a bare key
    is ``key-N``), never the key."""
    return f"api key {key_name}"


def cli_actor(given: str | None) -> str:
    return given or f"cli:{getpass.getuser()}"


def mark_paid(
    client: stripe.StripeClient,
    sessions: sessionmaker[Session],
    invoice_id: str,
    *,
    actor: str,
    reason: str,
    localstripe_compat: bool = False,
) -> MarkPaidResult:
    reason = reason.strip()
    if not reason:
        raise MarkPaidRefused("reason: required (finance reads it: e.g. 'bank transfer 2026-12-01')", 422)
    with session_scope(sessions) as session:
        earlier = session.scalar(select(ManualPayment).where(ManualPayment.invoice_id == invoice_id))
        if earlier is not None:
            raise MarkPaidRefused(
                f"invoice {invoice_id} is already paid: marked by {earlier.actor} on "
                f"{earlier.recorded_at:%Y-%m-%d} ({earlier.reason})"
            )
    try:
        inv = parse_invoice(to_plain(client.v1.invoices.retrieve(invoice_id)))
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            raise MarkPaidRefused(f"unknown invoice {invoice_id!r} in Stripe", 404) from None
        raise
    refusal = _refusal(inv)
    if refusal:
        raise MarkPaidRefused(refusal)
    # the intent is in the audit trail before anything is paid; its outcome after (a crash
    # between leaves an intent without an outcome, for ops to see)
    action_id = uuid.uuid4().hex
    with sessions() as session:
        audit_cid = resolve_customer(session, inv.customer, {}) or ""
    detail = {"invoice": invoice_id, "amount_cents": inv.amount_due_cents}
    _audit(sessions, action_id, INTENT, audit_cid, actor, reason, detail)
    stripe_updated = not localstripe_compat
    try:
        if stripe_updated:
            paid: dict[str, Any] = to_plain(client.v1.invoices.pay(
                invoice_id, params={"paid_out_of_band": True},
                options={"idempotency_key": f"mark-paid:{invoice_id}"},
            ))
            inv = parse_invoice(paid)
        else:
            now = int(dt.datetime.now(dt.UTC).timestamp())
            inv = parse_invoice({**to_plain(client.v1.invoices.retrieve(invoice_id)), "status": "paid",
                                 "amount_paid": inv.amount_due_cents,
                                 "status_transitions": {"paid_at": now}})
    except stripe.StripeError as exc:
        _audit(sessions, action_id, OUTCOME, audit_cid, actor, reason,
               {**detail, "outcome": f"failed: {exc.user_message or exc}"[:500]})
        raise
    event_id = f"billing:invoice_marked_paid:{invoice_id}"
    with session_scope(sessions) as session:
        cid = upsert_invoice(session, inv, now_ts()).customer_id
        insert_ignore(session, ManualPayment, dict(
            invoice_id=invoice_id, customer_id=cid, amount_cents=inv.amount_due_cents,
            actor=actor[:200], reason=reason, recorded_at=dt.datetime.now(dt.UTC),
        ), on=("invoice_id",))
        if cid is not None:
            add_timeline_event(
                session, key=event_id, customer_id=cid, kind="invoice_marked_paid",
                at=dt.datetime.now(dt.UTC),
                detail={"invoice": invoice_id, "amount_cents": inv.amount_due_cents, "actor": actor,
                        "reason": reason, "stripe_updated": stripe_updated},
            )
            enqueue(session, cid, customer_event(event_id, InvoiceMarkedPaid(
                invoice_id=invoice_id, stripe_subscription_id=inv.subscription,
                amount_due_cents=inv.amount_due_cents, attempt_count=inv.attempt_count,
                actor=actor, reason=reason,
            )))
    _audit(sessions, action_id, OUTCOME, cid or audit_cid, actor, reason,
           {**detail, "outcome": "paid", "stripe_updated": stripe_updated})
    return MarkPaidResult(invoice_id, cid, inv.amount_due_cents, actor, reason, stripe_updated, event_id)


def _audit(
    sessions: sessionmaker[Session], action_id: str, phase: str, customer_id: str, actor: str, reason: str,
    detail: dict[str, Any],
) -> None:
    audit.record(sessions, AuditEntryInput(
        action_id=f"{action_id}:{phase}", customer_id=customer_id, action=MARK_PAID, actor=actor,
        reason=reason, occurred_at=dt.datetime.now(dt.UTC), detail={"phase": phase, **detail},
    ))


def _refusal(inv: InvoiceRec) -> str | None:
    if inv.status == "paid":
        return f"invoice {inv.id} is already paid"
    if inv.status == "void":
        return f"invoice {inv.id} is void: there is nothing to pay"
    if inv.status == "draft":
        return f"invoice {inv.id} is a draft: finalize it in Stripe first"
    return None
