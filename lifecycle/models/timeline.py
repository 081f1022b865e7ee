"""The customer's timeline and the append-only audit trail of ops actions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from lifecycle.models.base import Base, utcnow

# --- the customer's timeline ------------------------------------------------------------


class LifecycleEvent(Base):
    """The customer's timeline: stage changes, emails sent or held back and why, events heard."""

    __tablename__ = "lifecycle_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Unique per workflow step so an activity retry records nothing twice.
    event_key: Mapped[str] = mapped_column(String(255), unique=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # stage_changed | email_sent | email_skipped | ...
    from_stage: Mapped[str | None] = mapped_column(String(32))
    to_stage: Mapped[str | None] = mapped_column(String(32))
    campaign: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --- ops: the audit trail ---------------------------------------------------------------


class AuditEntry(Base):
    """One ops action on one customer: who, what, why, when. Append-only: nothing in the
    engine updates or deletes a row, and a trigger refuses UPDATE and DELETE on both
    databases (migration 0012_audit_log). ``action_id`` makes a retried write record once."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_actor_occurred_at", "actor", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    action_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[dt.datetime] = mapped_column(index=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
