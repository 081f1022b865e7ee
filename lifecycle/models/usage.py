"""Usage metering: raw events, counters per period, threshold signals, and the signal outbox."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from lifecycle.models.base import Base, Quantity, utcnow

# --- usage ------------------------------------------------------------------------------


class UsageEvent(Base):
    """A raw usage event, kept as the audit trail for billing disputes."""

    __tablename__ = "usage_events"
    __table_args__ = (
        UniqueConstraint("customer_id", "idempotency_key", name="uq_usage_events_key"),
        Index("ix_usage_events_period", "customer_id", "metric", "period_start"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(128))
    metric: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    occurred_at: Mapped[dt.datetime]
    period_start: Mapped[dt.datetime]
    idempotency_key: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class UsageCounter(Base):
    """Usage per customer, metric and billing period; thresholds remember when they fired."""

    __tablename__ = "usage_counters"

    customer_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    metric: Mapped[str] = mapped_column(String(64), primary_key=True)
    period_start: Mapped[dt.datetime] = mapped_column(primary_key=True)
    period_end: Mapped[dt.datetime]
    used: Mapped[Decimal] = mapped_column(Quantity, default=Decimal(0))
    crossed_80_at: Mapped[dt.datetime | None]
    crossed_100_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class UsageSignal(Base):
    """Outbox of threshold crossings to signal to the customer's workflow.

    Written in the same transaction that marks the counter crossed, so a crossing is
    never lost when Temporal is unreachable; ``signalled_at`` is set once the signal
    went out, and a retry loop re-sends the rest (the workflow dedupes by ``event_id``).
    """

    __tablename__ = "usage_signals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    metric: Mapped[str] = mapped_column(String(64))
    threshold: Mapped[int] = mapped_column(Integer)  # 80 | 100
    period_start: Mapped[dt.datetime]
    period_end: Mapped[dt.datetime]
    used: Mapped[Decimal] = mapped_column(Quantity)
    limit_amount: Mapped[Decimal] = mapped_column(Quantity)
    limit_kind: Mapped[str] = mapped_column(String(8))  # hard | soft
    plan_code: Mapped[str] = mapped_column(String(32))
    crossed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    signalled_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class SignalOutbox(Base):
    """Outbox of events for customer workflows (signup, activation, Stripe hand-overs, ...).

    A route or the Stripe intake writes its facts and the event here in one transaction,
    commits, then delivers; whatever is not delivered (Temporal down, the process killed)
    is delivered by the relay with back-off. ``event_id`` is the workflow's de-duplication
    id, unique here too, so a repeated request queues nothing twice.
    """

    __tablename__ = "signal_outbox"
    __table_args__ = (Index("ix_signal_outbox_pending", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column()
    # set: signal-with-start, a new entity on this plan ({"plan": ..., "origin": ...})
    start: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
