"""Shared helpers for the usage tests: a database shared by a session's usage tests (SQLite and
PostgreSQL), customers, an app."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.db import make_engine, make_session_factory, session_scope, upgrade
from lifecycle.models import Customer, Subscription
from lifecycle.usage import Period, UsageService, period_from_anchor
from tests.conftest import free_port


class Db:
    """A migrated database for the usage tests."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = make_engine(url)
        self.factory: sessionmaker[Session] = make_session_factory(self.engine)
        self.dialect = self.engine.dialect.name

    def customer(
        self,
        plan: str = "starter",
        *,
        created_at: dt.datetime | None = None,
        stage: str = "active",
        subscription: tuple[dt.datetime, dt.datetime] | None = None,
        interval: str = "month",
    ) -> str:
        cid = f"cust-{uuid.uuid4().hex[:12]}"
        created = created_at or dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
        with session_scope(self.factory) as s:
            s.add(Customer(id=cid, email=f"{cid}@example.com", name="Test", plan_code=plan,
                           stage=stage, created_at=created))
            s.flush()
            if subscription:
                s.add(Subscription(stripe_subscription_id=f"sub_{cid}", customer_id=cid,
                                   plan_code=plan, interval=interval, status="active",
                                   current_period_start=subscription[0],
                                   current_period_end=subscription[1]))
        return cid

    def aged_customer(self, plan: str, days: int) -> tuple[str, Period]:
        """A customer created ``days`` ago (no subscription), and its current billing period."""
        now = dt.datetime.now(dt.UTC)
        created = now - dt.timedelta(days=days)
        return self.customer(plan, created_at=created), period_from_anchor(now, created)

    def set_plan(self, cid: str, plan: str) -> None:
        with session_scope(self.factory) as s:
            s.get(Customer, cid).plan_code = plan  # type: ignore[union-attr]


def usage_app(factory: sessionmaker[Session], temporal: object | None = None):  # noqa: ANN201
    """A FastAPI app with just the usage router, state set up as the real lifespan does."""
    from fastapi import FastAPI

    from starter.api.usage import router

    app = FastAPI()
    app.state.session_factory = factory
    app.state.usage_service = UsageService(factory)
    app.state.temporal = temporal
    app.include_router(router)
    return app


@contextlib.contextmanager
def serve(app: object) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free loopback port in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def usage_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Db]:
    """A migrated database shared by the usage tests of a session, on SQLite and PostgreSQL.

    The conftest's ``db_url`` migrates a new database for every test; the usage tests keep
    apart by using their own customers, so one per session and dialect is enough. The
    conftest's ``pg_server`` makes (and drops) the PostgreSQL one; it skips or, under
    CI=true, fails without a server. PostgreSQL only: ``@pytest.mark.parametrize("usage_db",
    ["postgresql"], indirect=True)``."""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_server")("usage")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('usage-sqlite') / 'usage.db'}"
    upgrade(url)
    db = Db(url)
    try:
        yield db
    finally:
        db.engine.dispose()
