"""Cancellation save and win-back: requests, offers, reactivations (analytics reads them)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from lifecycle.models.base import Base, UTCDateTime, utcnow

# --- retention: cancellation requests, save offers, reactivations ---------------------------


class CancellationRequest(Base):
    """A cancellation request with its reason (and the customer's comment: written here by
    the HTTP API, never into a workflow history) and what came of it."""

    __tablename__ = "cancellation_requests"

    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    reason: Mapped[str | None] = mapped_column(String(32))
    comment: Mapped[str | None] = mapped_column(Text)
    at_once: Mapped[bool] = mapped_column(Boolean, default=False)
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(timezone=True), default=utcnow)
    # requested | refused | offered | saved | cancel_scheduled | canceled
    outcome: Mapped[str] = mapped_column(String(32), default="requested")
    detail: Mapped[str | None] = mapped_column(Text)  # a refusal's reason
    offer_id: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(timezone=True))


class SaveOfferRow(Base):
    """One save offer made in answer to a cancellation request, and its answer."""

    __tablename__ = "save_offers"

    offer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    request_id: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))  # pause | downgrade | coupon
    months: Mapped[int] = mapped_column(Integer, default=0)
    percent_off: Mapped[float] = mapped_column(Numeric(5, 2, asdecimal=False), default=0)
    plan: Mapped[str | None] = mapped_column(String(32))
    made_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))  # open | accepted | declined | expired | withdrawn
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(timezone=True))


class Reactivation(Base):
    """A customer won back: when, on which plan, with which offer, and the MRR it brought."""

    __tablename__ = "reactivations"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    key: Mapped[str] = mapped_column(String(255), unique=True)  # the workflow step: recorded once
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    reactivated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(timezone=True), index=True)
    plan: Mapped[str] = mapped_column(String(32))
    interval: Mapped[str] = mapped_column(String(8))
    mrr_cents: Mapped[int] = mapped_column(Integer)
    from_stage: Mapped[str] = mapped_column(String(32))  # canceled | expired | lost
    winback: Mapped[int] = mapped_column(Integer, default=0)  # the n of customer-{id}/winback/{n}
    coupon_id: Mapped[str | None] = mapped_column(String(64))
    percent_off: Mapped[float] = mapped_column(Numeric(5, 2, asdecimal=False), default=0)
    duration_months: Mapped[int] = mapped_column(Integer, default=0)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(64))


class AccessPause(Base):
    """A pause a customer accepted (a save offer): billing stops and access is what the
    policy's ``save_offers.pause_access`` says (keep | read_only | none) until it ends.
    The usage check and the entitlements read it; one row per customer (the latest)."""

    __tablename__ = "access_pauses"

    customer_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    offer_id: Mapped[str] = mapped_column(String(64))
    access: Mapped[str] = mapped_column(String(16))  # keep | read_only | none
    paused_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(timezone=True))
    resumes_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(timezone=True))
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(timezone=True))  # None: in force
