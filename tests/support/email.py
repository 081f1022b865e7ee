"""Shared helpers for the email tests: a database with customers, settings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.db import make_engine, make_session_factory, session_scope
from lifecycle.models import Customer
from lifecycle.settings import PROJECT_ROOT, Settings, load_settings

TEMPLATES = PROJECT_ROOT / "templates"


def make_settings(db_url: str, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "database_url": db_url,
        "public_url": "https://lifecycle.example.com",
        "unsubscribe_secret": "test-secret-not-for-production",
        "email_sender": "Example <hello@example.com>",
        "templates_dir": TEMPLATES,
    }
    base.update(overrides)
    return load_settings(**base)


@dataclass
class EmailDB:
    url: str
    factory: sessionmaker[Session]

    def add_customer(
        self, customer_id: str, *, email: str | None = None, timezone: str = "UTC",
        name: str = "Grace Hopper",
    ) -> None:
        with session_scope(self.factory) as s:
            s.add(Customer(
                id=customer_id, email=email or f"{customer_id}@example.org", name=name,
                timezone=timezone, plan_code="starter",
            ))


@pytest.fixture
def email_db(db_url: str) -> Iterator[EmailDB]:
    """A migrated database: once SQLite, once PostgreSQL (conftest's ``db_url``)."""
    engine = make_engine(db_url)
    try:
        yield EmailDB(db_url, make_session_factory(engine))
    finally:
        engine.dispose()


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)
