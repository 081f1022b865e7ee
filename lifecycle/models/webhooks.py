"""Webhooks to the product: endpoints, published events, the delivery log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from lifecycle.models.base import Base, utcnow

# --- webhooks to the product ------------------------------------------------------------


class WebhookEndpoint(Base):
    """An endpoint of the product that receives lifecycle events, signed with its own secret.

    The secret (``whsec_…``) is shown once at creation and kept here as is: the engine needs
    it to sign every delivery (Standard Webhooks, HMAC-SHA256). An endpoint that failed a
    delivery for the whole retry window is disabled (``disabled_at``); a removed one stays
    (``removed_at``) so the delivery log can still name it.
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[dt.datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    removed_at: Mapped[dt.datetime | None]


class WebhookEventRow(Base):
    """An event published for the product, once per ``event_id`` (the ``webhook-id`` header)."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[dt.datetime]
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """The delivery log: one event to one endpoint, with its last attempt.

    ``key`` is ``{event_id}:{endpoint_id}`` for the first delivery (a retried publish adds
    none) and carries a suffix for a redelivery. ``status``: pending | delivered | failed |
    skipped.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status", "status", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(400), unique=True)
    event_id: Mapped[str] = mapped_column(String(255), index=True)
    endpoint_id: Mapped[str] = mapped_column(String(32), index=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    response_head: Mapped[str | None] = mapped_column(Text)  # the response body's first bytes
    error: Mapped[str | None] = mapped_column(Text)
    redelivery_of: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[dt.datetime | None]
    delivered_at: Mapped[dt.datetime | None]
