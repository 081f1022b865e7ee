"""Shared helpers for the email tests: a migrated SQLite database, settings, customers."""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
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


PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _pg_database() -> str:
    """A fresh PostgreSQL database; skips without a server, fails under CI=true."""
    import psycopg

    name = f"lc_test_{os.getpid()}_email_{uuid.uuid4().hex[:6]}"
    try:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True,
                             connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is not reachable under CI=true: {exc}")
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
    return name


def _drop_pg(name: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def email_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EmailDB]:
    """A migrated database: once SQLite, once PostgreSQL."""
    pg_name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'email.db'}"
    else:
        pg_name = _pg_database()
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + pg_name
    upgrade(url)
    engine = make_engine(url)
    try:
        yield EmailDB(url, make_session_factory(engine))
    finally:
        engine.dispose()
        if pg_name:
            _drop_pg(pg_name)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)
