"""The audit trail of ops actions (``audit_log``): written once per action, never changed.

The entity workflow records each action it took through the ops activity
(``activities/ops.py``), so an action that happened is always in the trail; the
timeline gets the same entry (kind ``ops_action``) in the same transaction. The actions
that move money (mark-paid, retry-now, extend-grace) also write their intent before
acting, so a crash between the two leaves an intent without an outcome, visible.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.contracts.ops import AuditEntryInput
from lifecycle.db import add_timeline_event, insert_ignore, session_scope
from lifecycle.models import AuditEntry

TIMELINE_KIND = "ops_action"
# an action that moves money writes two rows: its intent before acting, its outcome after
# (``detail.phase``; the action ids end in ``:intent`` / ``:outcome``)
INTENT, OUTCOME = "intent", "outcome"


def record(sessions: sessionmaker[Session], entry: AuditEntryInput) -> bool:
    """Add the audit row and its timeline entry; False when this action id is recorded already."""
    with session_scope(sessions) as session:
        added = insert_ignore(session, AuditEntry, dict(
            action_id=entry.action_id,
            customer_id=entry.customer_id,
            action=entry.action,
            actor=entry.actor[:200],
            reason=entry.reason,
            detail=entry.detail,
            occurred_at=entry.occurred_at,
            recorded_at=dt.datetime.now(dt.UTC),
        ), on=("action_id",))
        add_timeline_event(
            session, key=f"audit:{entry.action_id}", customer_id=entry.customer_id,
            kind=TIMELINE_KIND, at=entry.occurred_at,
            detail={"action": entry.action, "actor": entry.actor, "reason": entry.reason, **entry.detail},
        )
        return added


@dataclass
class AuditRow:
    occurred_at: dt.datetime
    customer_id: str
    action: str
    actor: str
    reason: str
    detail: dict[str, Any]
    action_id: str


def entries(
    session: Session, *, customer_id: str | None = None, actor: str | None = None, limit: int = 100
) -> list[AuditRow]:
    """The newest entries first, filtered by customer and/or actor."""
    query = select(AuditEntry).order_by(AuditEntry.occurred_at.desc(), AuditEntry.id.desc()).limit(limit)
    if customer_id:
        query = query.where(AuditEntry.customer_id == customer_id)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    return [
        AuditRow(r.occurred_at, r.customer_id, r.action, r.actor, r.reason, dict(r.detail), r.action_id)
        for r in session.scalars(query)
    ]
