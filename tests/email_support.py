"""Shared helpers for the email tests: a migrated SQLite database, settings, customers."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.db import make_engine, make_session_factory, session_scope, upgrade
from lifecycle.models import Customer
from lifecycle.settings import PROJECT_ROOT, Settings, load_settings

TEMPLATES = PROJECT_ROOT / "templates"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
def email_db(tmp_path: Path) -> Iterator[EmailDB]:
    url = f"sqlite:///{tmp_path / 'email.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        yield EmailDB(url, make_session_factory(engine))
    finally:
        engine.dispose()


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)
