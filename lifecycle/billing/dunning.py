"""Dunning's facts in the database: each run's state and suspension (``dunning_runs``), each
invoice's case (``dunning_cases``), and the open invoices a dunning begins with.

The dunning workflow saves a :class:`DunningSnapshot` through an activity at every change;
the usage check reads the suspension from here (DB only: it keeps working while Temporal
is down) and so does ``GET /v1/customers/{id}``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.contracts.dunning import (
    OPEN,
    PAID,
    DunningInvoice,
    DunningSnapshot,
)
from lifecycle.db import insert_ignore
from lifecycle.models import DunningCase, DunningRun, Invoice

# how a case ends, from the invoice's state and whether the run ended with it open
RECOVERED = "recovered"
CLOSED = "closed"
LOST = "lost"


def open_invoices(session: Session, customer_id: str) -> list[DunningInvoice]:
    """The customer's open invoices as the mirror has them, oldest first."""
    rows = session.scalars(
        select(Invoice)
        .where(Invoice.customer_id == customer_id, Invoice.status == "open")
        .order_by(Invoice.created_at, Invoice.id)
    )
    return [
        DunningInvoice(
            invoice_id=r.stripe_invoice_id,
            amount_due_cents=r.amount_due_cents - r.amount_paid_cents,
            currency=r.currency,
            attempt_count=r.attempt_count,
        )
        for r in rows
    ]


def _outcome(inv: DunningInvoice, ended: bool) -> str:
    if inv.status == PAID:
        return RECOVERED
    if inv.status != OPEN:
        return CLOSED
    return LOST if ended else "open"


def save_snapshot(session: Session, snap: DunningSnapshot) -> None:
    """Write the run and its invoices' cases (a full snapshot: saving it twice is harmless);
    keyed by workflow id and run, so a second dunning of the same invoice keeps the first's."""
    # insert-or-ignore, then read and write the snapshot (a retried save at once: one row)
    insert_ignore(session, DunningRun, dict(
        workflow_id=snap.workflow_id, run_id=snap.run_id, customer_id=snap.customer_id, state=snap.state,
        since=snap.since, started_at=snap.started_at, retry_mode=snap.retry_mode,
    ), on=("workflow_id", "run_id"))
    run = session.get(DunningRun, (snap.workflow_id, snap.run_id))
    assert run is not None
    run.state = snap.state
    run.since = snap.since
    run.started_at = snap.started_at
    run.retry_mode = snap.retry_mode
    run.suspended = snap.suspended
    run.next_retry_at = snap.next_retry_at
    run.next_step = snap.next_step
    run.next_step_at = snap.next_step_at
    run.ended = snap.ended
    run.recovered_how = snap.recovered_how
    run.suspended_once = bool(run.suspended_once) or snap.suspended
    run.end_action = snap.end_action
    run.end_action_error = snap.end_action_error
    run.end_action_failing_since = snap.end_action_failing_since
    for inv in snap.invoices:
        insert_ignore(session, DunningCase, dict(
            invoice_id=inv.invoice_id, workflow_id=snap.workflow_id, run_id=snap.run_id,
            customer_id=snap.customer_id, failed_at=inv.failed_at or snap.started_at,
        ), on=("invoice_id", "run_id"))
        case = session.scalars(select(DunningCase).where(
            DunningCase.invoice_id == inv.invoice_id, DunningCase.run_id == snap.run_id)).one()
        case.workflow_id = snap.workflow_id
        case.customer_id = snap.customer_id
        case.amount_cents = inv.amount_due_cents
        case.currency = inv.currency
        case.decline_code = inv.decline_code
        case.hard_decline = inv.hard_decline
        case.failed_at = inv.failed_at or snap.started_at
        case.outcome = _outcome(inv, snap.ended)
        case.how = inv.closed_how
        case.closed_at = inv.closed_at


def suspension(session: Session, customer_id: str) -> DunningRun | None:
    """The dunning run that suspends this customer's access, if any (one indexed query)."""
    return session.scalar(
        select(DunningRun)
        .where(DunningRun.customer_id == customer_id, DunningRun.suspended.is_(True))
        .limit(1)
    )


def overdue_reason(run: DunningRun) -> str:
    return (
        f"payment is overdue since {run.started_at:%Y-%m-%d}: access is suspended until the "
        "open invoices are paid (update the card from the link in the last billing email)"
    )


def current_view(session: Session, customer_id: str) -> dict[str, Any] | None:
    """The customer's running dunning (else the latest) as ``GET /v1/customers/{id}`` shows it."""
    run = session.scalar(
        select(DunningRun)
        .where(DunningRun.customer_id == customer_id)
        .order_by(DunningRun.ended, DunningRun.started_at.desc())
        .limit(1)
    )
    if run is None:
        return None
    cases = session.scalars(
        select(DunningCase)
        .where(DunningCase.workflow_id == run.workflow_id, DunningCase.run_id == run.run_id)
        .order_by(DunningCase.failed_at)
    )
    return {
        "workflow_id": run.workflow_id,
        "state": run.state,
        "since": run.since,
        "started_at": run.started_at,
        "retry_mode": run.retry_mode,
        "suspended": run.suspended,
        "ended": run.ended,
        "recovered_how": run.recovered_how,
        "open_invoices": [
            {"invoice_id": c.invoice_id, "amount_cents": c.amount_cents, "currency": c.currency,
             "decline_code": c.decline_code, "hard_decline": c.hard_decline}
            for c in cases if c.outcome == "open"
        ],
        "next_retry_at": run.next_retry_at,
        "next_step": run.next_step,
        "next_step_at": run.next_step_at,
        # the end action taken but not confirmed by Stripe (its call fails, retried): Stripe
        # keeps billing until it succeeds
        "end_action_failing": (
            {"action": run.end_action, "error": run.end_action_error, "since": run.end_action_failing_since}
            if run.end_action_error and not run.ended else None
        ),
    }


def end_actions_failing(session: Session) -> list[DunningRun]:
    """The runs whose end action Stripe has not confirmed (its call fails and is retried),
    longest failing first: the gauge ``lifecycle_dunning_end_action_failing`` and the digest."""
    return list(session.scalars(
        select(DunningRun)
        .where(DunningRun.end_action_error.is_not(None), DunningRun.ended.is_(False))
        .order_by(DunningRun.end_action_failing_since)
    ))


def days_between(a: dt.datetime, b: dt.datetime) -> float:
    return round((b - a).total_seconds() / 86400, 2)


def counts(session: Session) -> dict[str, int]:
    """Dunning runs ever entered, recovered, suspended, ended by the end action (the
    Prometheus counters: rows are never deleted, so each only grows)."""
    runs = list(session.execute(select(DunningRun.state, DunningRun.suspended_once, DunningRun.end_action)))
    return {
        "entered": len(runs),
        "recovered": sum(1 for r in runs if r.state == "recovered"),
        "suspended": sum(1 for r in runs if r.suspended_once),
        "ended": sum(1 for r in runs if r.end_action is not None),
    }
