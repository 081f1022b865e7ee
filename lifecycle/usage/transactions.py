"""How metering's writes run: retried whole when the database says "try again", and on
SQLite with the read phase ended before the first write."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

T = TypeVar("T")


def is_retryable(exc: DBAPIError) -> bool:
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if code in ("40001", "40P01"):  # serialization failure, deadlock
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc)


def with_retry(fn: Callable[[], T], attempts: int = 5) -> T:
    """``fn()`` (a whole unit of work, opening its own session), again on a retryable error."""
    for attempt in range(attempts):
        try:
            return fn()
        except DBAPIError as exc:
            if attempt == attempts - 1 or not is_retryable(exc):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def end_read_phase(session: Session, dialect: str) -> None:
    """On SQLite, end the read transaction before writing: a deferred transaction that
    reads and then writes fails at once (SQLITE_BUSY) when another writer got in between.
    PostgreSQL needs no such thing, and saves the round trip."""
    if dialect == "sqlite":
        session.commit()
