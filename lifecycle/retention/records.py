"""Writes and reads of the retention tables: ``cancellation_requests``, ``save_offers``,
``reactivations``. Each write is idempotent (by request id, offer id or step key) and puts
the same fact on the customer's timeline, so an activity retry records nothing twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lifecycle.contracts.winback import (
    CancellationRecord,
    ReactivationRecord,
    SaveOfferRecord,
)
from lifecycle.db import add_timeline_event, insert_ignore
from lifecycle.models import CancellationRequest, Reactivation, SaveOfferRow

CAMPAIGN = "retention"


def request_cancellation(
    session: Session, *, customer_id: str, request_id: str, reason: str | None, comment: str | None,
    at_once: bool, now: dt.datetime,
) -> None:
    """The HTTP API's record of a request, before the workflow answers (comment kept here only)."""
    insert_ignore(session, CancellationRequest, dict(
        request_id=request_id, customer_id=customer_id, reason=reason, comment=comment,
        at_once=at_once, requested_at=now, outcome="requested",
    ), on=("request_id",))


def refuse_cancellation(session: Session, request_id: str, why: str) -> None:
    row = session.get(CancellationRequest, request_id)
    if row is not None and row.outcome == "requested":
        row.outcome, row.detail = "refused", why[:1000]


def record_cancellation(session: Session, rec: CancellationRecord) -> None:
    # a request that did not come through the API (ops, a test) is added: insert-or-ignore
    insert_ignore(session, CancellationRequest, dict(
        request_id=rec.request_id, customer_id=rec.customer_id, reason=rec.reason,
        at_once=False, requested_at=rec.at, outcome=rec.outcome,
    ), on=("request_id",))
    row = session.get(CancellationRequest, rec.request_id)
    assert row is not None
    row.outcome = rec.outcome
    row.offer_id = rec.offer_id or row.offer_id
    row.decided_at = rec.at if rec.outcome != "offered" else None
    add_timeline_event(
        session, key=f"cancellation:{rec.request_id}:{rec.outcome}", customer_id=rec.customer_id,
        kind="cancellation_requested" if rec.outcome == "offered" else "cancellation_" + rec.outcome,
        at=rec.at, campaign=CAMPAIGN,
        detail={"request_id": rec.request_id, "reason": rec.reason, "offer_id": rec.offer_id},
    )


def record_save_offer(session: Session, rec: SaveOfferRecord) -> None:
    o = rec.offer
    values: dict[str, Any] = dict(
        offer_id=o.offer_id, customer_id=rec.customer_id, request_id=o.request_id, reason=o.reason,
        kind=o.kind, months=o.months, percent_off=o.percent_off, plan=o.plan, made_at=o.made_at,
        expires_at=o.expires_at, status=o.status, decided_at=o.decided_at,
    )
    if not insert_ignore(session, SaveOfferRow, values, on=("offer_id",)):
        row = session.get(SaveOfferRow, o.offer_id)
        assert row is not None
        row.status, row.decided_at = o.status, o.decided_at
    add_timeline_event(
        session, key=f"save-offer:{o.offer_id}:{rec.event}", customer_id=rec.customer_id,
        kind=f"save_offer_{rec.event}", at=o.decided_at or o.made_at, campaign=CAMPAIGN,
        detail={"offer_id": o.offer_id, "kind": o.kind, "reason": o.reason, "months": o.months,
                "percent_off": o.percent_off, "plan": o.plan, "request_id": o.request_id},
    )


def record_reactivation(session: Session, rec: ReactivationRecord) -> None:
    values = {f.name: getattr(rec, f.name) for f in dataclasses.fields(rec) if f.name not in ("at", "extra")}
    values["reactivated_at"] = rec.at
    if insert_ignore(session, Reactivation, values, on=("key",)):
        add_timeline_event(
            session, key=f"reactivation:{rec.key}", customer_id=rec.customer_id, kind="reactivated",
            at=rec.at, campaign="winback",
            detail={"plan": rec.plan, "interval": rec.interval, "mrr_cents": rec.mrr_cents,
                    "coupon_id": rec.coupon_id, "percent_off": rec.percent_off,
                    "winback": rec.winback, "from_stage": rec.from_stage},
        )


def offer_row(session: Session, offer_id: str) -> SaveOfferRow | None:
    return session.get(SaveOfferRow, offer_id)


def reactivation_mrr_cents(session: Session, since: dt.datetime | None = None) -> int:
    """The MRR won back since ``since`` (all time: None): what analytics reads."""
    q = select(func.coalesce(func.sum(Reactivation.mrr_cents), 0))
    if since is not None:
        q = q.where(Reactivation.reactivated_at >= since)
    return int(session.scalar(q) or 0)


def summary(session: Session, customer_id: str, limit: int = 5) -> dict[str, Any]:
    """The customer's latest cancellation requests, save offers and reactivations (newest
    first), as the API's customer view and ``lifecycle customer show`` print them."""
    requests = session.scalars(
        select(CancellationRequest).where(CancellationRequest.customer_id == customer_id)
        .order_by(CancellationRequest.requested_at.desc()).limit(limit)
    )
    offers = session.scalars(
        select(SaveOfferRow).where(SaveOfferRow.customer_id == customer_id)
        .order_by(SaveOfferRow.made_at.desc()).limit(limit)
    )
    wins = session.scalars(
        select(Reactivation).where(Reactivation.customer_id == customer_id)
        .order_by(Reactivation.reactivated_at.desc()).limit(limit)
    )
    return {
        "cancellation_requests": [
            {"request_id": r.request_id, "reason": r.reason, "outcome": r.outcome,
             "requested_at": r.requested_at.isoformat(), "offer_id": r.offer_id}
            for r in requests
        ],
        "save_offers": [
            {"offer_id": o.offer_id, "kind": o.kind, "reason": o.reason, "months": o.months,
             "percent_off": o.percent_off, "plan": o.plan, "status": o.status,
             "expires_at": o.expires_at.isoformat()}
            for o in offers
        ],
        "reactivations": [
            {"at": w.reactivated_at.isoformat(), "plan": w.plan, "interval": w.interval,
             "mrr_cents": w.mrr_cents, "coupon_id": w.coupon_id, "percent_off": w.percent_off,
             "winback": w.winback}
            for w in wins
        ],
    }
