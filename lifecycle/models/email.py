"""Email: every message sent (or held), suppressions, published template versions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from lifecycle.models.base import Base, utcnow

# --- email ------------------------------------------------------------------------------


class EmailMessage(Base):
    """One email, recorded under a key unique to the workflow step that sent it."""

    __tablename__ = "email_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    customer_id: Mapped[str | None] = mapped_column(String(128), index=True)
    campaign: Mapped[str] = mapped_column(String(64), default="")
    step: Mapped[str] = mapped_column(String(64), default="")
    template: Mapped[str] = mapped_column(String(128))
    template_version: Mapped[str] = mapped_column(String(64), default="file")
    variant: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(16), default="marketing")  # or transactional
    to_address: Mapped[str] = mapped_column(String(320))
    from_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    provider: Mapped[str] = mapped_column(String(16))
    provider_message_id: Mapped[str | None] = mapped_column(String(255), index=True)
    # sending | sent | delivered | opened | clicked | bounced | dropped | failed
    status: Mapped[str] = mapped_column(String(16), default="sending", index=True)
    is_test: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    sent_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Suppression(Base):
    """An address or customer that must not receive (some) email."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("email", "reason", name="uq_suppressions_email_reason"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    customer_id: Mapped[str | None] = mapped_column(String(128), index=True)
    reason: Mapped[str] = mapped_column(String(32))  # unsubscribe | bounce | spam_report
    scope: Mapped[str] = mapped_column(String(16), default="marketing")  # marketing | all
    source: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TemplateVersion(Base):
    """A template edited without a deploy; the newest published version overrides the file."""

    __tablename__ = "template_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_template_versions_name_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    preheader: Mapped[str] = mapped_column(Text, default="")
    # The whole template file as published (extends the layout, all blocks); the columns
    # above hold its blocks for an editor. Rendering uses this.
    source: Mapped[str | None] = mapped_column(Text)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    author: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
