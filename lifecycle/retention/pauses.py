"""A pause's access (``access_pauses``): written by the entity's retention activity when a
save offer's pause begins and ends, read by the usage check and the entitlements.

``keep`` leaves everything as if billed; ``read_only`` keeps the features but refuses
metered usage; ``none`` refuses both. A pause past its ``resumes_at`` no longer counts
even before the entity's timer ends it (a worker outage never extends it).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from lifecycle.contracts.policy_retention import PAUSE_KEEP, PAUSE_NONE
from lifecycle.contracts.winback import AccessPauseRecord
from lifecycle.db import add_timeline_event, insert_ignore
from lifecycle.models import AccessPause

CAMPAIGN = "retention"


def record_access_pause(session: Session, rec: AccessPauseRecord) -> None:
    """The pause began (its row, in force) or ended (``ended_at``); idempotent by offer."""
    insert_ignore(session, AccessPause, dict(
        customer_id=rec.customer_id, offer_id=rec.offer_id, access=rec.access,
        paused_at=rec.at, resumes_at=rec.resumes_at,
    ), on=("customer_id",))
    row = session.get(AccessPause, rec.customer_id)
    assert row is not None
    if row.offer_id != rec.offer_id and not rec.ended:  # a later pause replaces an ended one
        row.offer_id, row.access, row.paused_at, row.resumes_at = rec.offer_id, rec.access, rec.at, rec.resumes_at
        row.ended_at = None
    elif row.offer_id == rec.offer_id and rec.ended and row.ended_at is None:
        row.ended_at = rec.at
    add_timeline_event(
        session, key=f"access-pause:{rec.offer_id}:{'ended' if rec.ended else 'began'}",
        customer_id=rec.customer_id, kind="access_resumed" if rec.ended else "access_paused",
        at=rec.at, campaign=CAMPAIGN,
        detail={"offer_id": rec.offer_id, "access": rec.access, "resumes_at": rec.resumes_at.isoformat()},
    )


def access_pause(session: Session, customer_id: str, now: dt.datetime) -> AccessPause | None:
    """The pause limiting this customer's access now (None: none, ended, or ``keep``)."""
    row = session.get(AccessPause, customer_id)
    if row is None or row.ended_at is not None or row.access == PAUSE_KEEP or row.resumes_at <= now:
        return None
    return row


def paused_reason(row: AccessPause) -> str:
    what = "features and metered usage are" if row.access == PAUSE_NONE else "metered usage is"
    return (
        f"the subscription is paused until {row.resumes_at:%Y-%m-%d} (a save offer the customer "
        f"accepted): {what} not available during the pause; it comes back when billing resumes"
    )
