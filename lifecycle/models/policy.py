"""Published versions of the campaign policy and the tier catalog (``lifecycle policy publish``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from lifecycle.models.base import Base, utcnow


class PolicyVersionRow(Base):
    """One version: the policy and the catalog as JSON, unique by content hash (the same
    content published again is this row: ``published_at`` / ``published_by`` say who
    published it last, which makes it the latest again)."""

    __tablename__ = "policy_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    content: Mapped[dict[str, Any]] = mapped_column()
    published_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    published_by: Mapped[str] = mapped_column(String(200), default="")
