"""Idempotency keys of the ops routes that move money (``Idempotency-Key`` header)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from lifecycle.models.base import Base, utcnow


class IdempotencyKey(Base):
    """One client key on one route: ``running`` while the first call acts, then ``done`` with
    its answer (status and body), which every retry with the same key gets."""

    __tablename__ = "idempotency_keys"

    route: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    actor: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(16), default="running")  # running | done
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    answer: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
