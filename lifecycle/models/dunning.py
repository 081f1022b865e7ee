"""Payment recovery: each dunning run, each invoice through it, and invoices marked paid by hand."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from lifecycle.models.base import Base, utcnow

# --- dunning (payment recovery) ---------------------------------------------------------


class DunningRun(Base):
    """One dunning workflow's state, saved at every change: what ``GET /v1/customers/{id}``
    shows and what the usage check reads (``suspended``), so both work while Temporal is down."""

    __tablename__ = "dunning_runs"

    workflow_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    # the run's first-execution run id: a second dunning under the same workflow id (the
    # same invoice) keeps its own row; "" for runs begun before keys carried the run
    run_id: Mapped[str] = mapped_column(String(64), primary_key=True, default="", server_default="")
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    state: Mapped[str] = mapped_column(String(32))
    since: Mapped[dt.datetime]
    started_at: Mapped[dt.datetime]
    retry_mode: Mapped[str] = mapped_column(String(16))
    # access refused by the usage check ("payment overdue") while true
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    next_retry_at: Mapped[dt.datetime | None]
    next_step: Mapped[str | None] = mapped_column(String(64))
    next_step_at: Mapped[dt.datetime | None]
    ended: Mapped[bool] = mapped_column(Boolean, default=False)
    recovered_how: Mapped[str | None] = mapped_column(String(32))
    # for the counters: suspended at some point; the end action taken (cancel, unpaid, ...)
    suspended_once: Mapped[bool] = mapped_column(Boolean, default=False)
    end_action: Mapped[str | None] = mapped_column(String(32))
    # the end action's Stripe call failing (retried with backoff): its last error and since
    # when; both None once Stripe confirmed it (or it needs no call)
    end_action_error: Mapped[str | None] = mapped_column(Text)
    end_action_failing_since: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_dunning_runs_suspended", "customer_id", "suspended"),)


class DunningCase(Base):
    """One invoice that went through dunning, and how it came out (the finance report)."""

    __tablename__ = "dunning_cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    invoice_id: Mapped[str] = mapped_column(String(64))
    workflow_id: Mapped[str] = mapped_column(String(255), index=True)
    run_id: Mapped[str] = mapped_column(String(64), default="", server_default="")  # as DunningRun's
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    amount_cents: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    decline_code: Mapped[str | None] = mapped_column(String(64))
    hard_decline: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_at: Mapped[dt.datetime] = mapped_column(index=True)
    # open | recovered | closed (voided, uncollectible) | lost (dunning ended unpaid)
    outcome: Mapped[str] = mapped_column(String(16), default="open")
    how: Mapped[str | None] = mapped_column(String(32))  # retry_<n> | card_update | manual | stripe | voided | ...
    closed_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (UniqueConstraint("invoice_id", "run_id"),)  # one case per invoice and run


class ManualPayment(Base):
    """An invoice ops marked paid out of band: who and why (``lifecycle invoice mark-paid``)."""

    __tablename__ = "manual_payments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    invoice_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[str | None] = mapped_column(String(128), index=True)
    amount_cents: Mapped[int] = mapped_column(Integer, default=0)
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
