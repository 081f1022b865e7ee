"""Fixtures for the email tests (registered in tests/conftest.py with ``pytest_plugins``):
a database with customers, settings, an SMTP server (aiosmtpd) and a local stand-in for
SendGrid's v3 mail-send that records what it is sent."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.db import make_engine, make_session_factory, session_scope
from lifecycle.models import Customer
from lifecycle.settings import PROJECT_ROOT, Settings, load_settings
from starter.dev.localstripe import free_port

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


# --- SMTP -------------------------------------------------------------------------------


@dataclass
class SmtpSink:
    messages: list[Any] = field(default_factory=list)
    reply: str = "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.reply.startswith("250"):
            self.messages.append(envelope)
        return self.reply


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpSink, int]]:
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


# --- SendGrid ---------------------------------------------------------------------------


@dataclass
class FakeSendGrid:
    """A local HTTP server that records v3 mail-send requests and answers as told."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def sendgrid_server() -> Iterator[FakeSendGrid]:
    fake = FakeSendGrid()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            fake.requests.append({"path": self.path, "headers": dict(self.headers),
                                  "json": json.loads(body)})
            status, headers, out = fake.answers.pop(0) if fake.answers else (
                202, {"X-Message-Id": "sg-abc123"}, b"")
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
