"""Published versions of the campaign policy and the tier catalog (``lifecycle policy publish``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from lifecycle.models.base import Base, utcnow


class PolicyVersionRow(Base):
    """One version: the policy and the catalog as JSON, unique by content hash (the same
    content published again is this row: ``published_at`` / ``published_by`` say who
    published it last, for people; which one is the latest is :class:`PolicyPublicationRow`'s)."""

    __tablename__ = "policy_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    content: Mapped[dict[str, Any]] = mapped_column()
    published_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    published_by: Mapped[str] = mapped_column(String(200), default="")


class PolicyPublicationRow(Base):
    """One publication of a version (the first, or the same content made the latest again).
    The latest version is the one of the highest ``id``: an order the database assigns
    (its sequence / rowid), not the publisher's clock, and an insert, not a check-then-update."""

    __tablename__ = "policy_publications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("policy_versions.id"), index=True)
    published_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    published_by: Mapped[str] = mapped_column(String(200), default="")
