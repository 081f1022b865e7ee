"""``Idempotency-Key`` for the ops calls that move money (mark-paid, retry-now, extend-grace).

The first call with a key claims it (an insert-or-ignore of ``running``), acts, and stores
its answer (``done``: status and body); a retry with the same key on the same route gets
that answer and acts nothing. A duplicate that arrives while the first is still acting is
answered 409 at once ("in progress: retry in a moment"): it neither waits nor acts, and its
retry later gets the stored answer. An answer the client should retry (a 5xx: Stripe or
Temporal unreachable) is not stored: the key is released so the retry acts. A process that
dies while acting leaves the key ``running`` (and the audit trail an intent without an
outcome): ops look at the trail, then act again with a new key.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.db import insert_ignore, session_scope
from lifecycle.models import IdempotencyKey

HEADER = "Idempotency-Key"
RUNNING, DONE = "running", "done"


@dataclass(frozen=True)
class Claim:
    """``acts``: this call is the first and acts; else ``status_code``/``answer`` is the stored
    answer, or ``in_progress`` when the first has not finished."""

    acts: bool
    in_progress: bool = False
    status_code: int | None = None
    answer: dict[str, Any] | None = None


def claim(sessions: sessionmaker[Session], route: str, key: str, actor: str) -> Claim:
    with session_scope(sessions) as session:
        if insert_ignore(session, IdempotencyKey, dict(
            route=route[:200], key=key[:200], actor=actor[:200], state=RUNNING,
            created_at=dt.datetime.now(dt.UTC),
        ), on=("route", "key")):
            return Claim(acts=True)
        row = session.get(IdempotencyKey, (route[:200], key[:200]))
        if row is None or row.state == RUNNING:
            return Claim(acts=False, in_progress=True)
        return Claim(acts=False, status_code=row.status_code, answer=dict(row.answer or {}))


def finish(sessions: sessionmaker[Session], route: str, key: str, status_code: int, answer: dict[str, Any]) -> None:
    """Store the first call's answer; a 5xx releases the key instead (the retry acts)."""
    with session_scope(sessions) as session:
        row = session.get(IdempotencyKey, (route[:200], key[:200]))
        if row is None:
            return
        if status_code >= 500:
            session.execute(delete(IdempotencyKey).where(
                IdempotencyKey.route == route[:200], IdempotencyKey.key == key[:200]))
            return
        row.state, row.status_code, row.answer = DONE, status_code, answer
        row.finished_at = dt.datetime.now(dt.UTC)
