"""The API never freezes and never loses an acknowledged event.

- Ten identical signups (a product retrying) and ten identical activations at once, on
  SQLite and PostgreSQL: one customer, one timeline entry, one workflow, every request
  answered, /healthz alive. (Before: a lock wait on the event loop froze the whole API.)
- Temporal unreachable: a signup is accepted (202, queued) and recorded, database-only
  routes keep answering, and once Temporal is back the relay delivers the event without
  the product retrying.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from lifecycle import temporal as temporal_bins
from lifecycle.contracts.ids import customer_workflow_id
from lifecycle.db import make_engine, make_session_factory
from lifecycle.models import Customer, LifecycleEvent, SignalOutbox
from lifecycle.settings import Settings
from lifecycle.temporal import connect, ensure_search_attributes
from starter.api.app import create_app
from tests.conftest import free_port
from tests.support.helpers import eventually
from worker import build_worker
from workflows.customer import CustomerWorkflow

AUTH = {"Authorization": "Bearer test-key"}
SIGNUP = {"customer_id": "acme-1", "email": "ada@acme.test", "name": "Ada"}


async def _http(app) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=AUTH) as http:
            yield http


@pytest.fixture
def db_settings(db_url: str, settings: Settings) -> Settings:
    return settings.model_copy(update={"database_url": db_url, "signal_relay_interval_seconds": 0.2})


@pytest.fixture
def db_sessions(db_settings: Settings):
    engine = make_engine(db_settings.database_url)
    yield make_session_factory(engine)
    engine.dispose()


async def test_ten_identical_signups_and_activations_at_once(ts_env, db_settings, db_sessions) -> None:
    async with build_worker(ts_env.client, db_settings, db_sessions):
        async for http in _http(create_app(db_settings, temporal=ts_env.client)):
            answers = await asyncio.wait_for(
                asyncio.gather(*(http.post("/v1/events/signup", json=SIGNUP) for _ in range(10))), 60
            )
            codes = sorted(r.status_code for r in answers)
            assert codes == [200] * 9 + [201], [r.text for r in answers]
            assert (await http.get("/healthz")).status_code == 200

            act = {"customer_id": "acme-1", "fact": "used_api"}
            answers = await asyncio.wait_for(
                asyncio.gather(*(http.post("/v1/events/activation", json=act) for _ in range(10))), 60
            )
            assert {r.status_code for r in answers} == {202}
            assert (await http.get("/healthz")).status_code == 200

            handle = ts_env.client.get_workflow_handle(customer_workflow_id("acme-1"))

            async def knows_the_fact(handle=handle) -> bool:
                return "used_api" in (await handle.query(CustomerWorkflow.state)).activation_facts

            await eventually(knows_the_fact)
            # one workflow: the run that answers is the first and only one
            desc = await handle.describe()
            started = (await handle.fetch_history()).events[0].workflow_execution_started_event_attributes
            assert started.first_execution_run_id == desc.run_id
            assert not started.continued_execution_run_id
    with db_sessions() as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == 1
        kinds = list(s.scalars(select(LifecycleEvent.kind).where(LifecycleEvent.kind.in_(["signup", "activation"]))))
        assert sorted(kinds) == ["activation", "signup"]
        assert s.scalar(select(func.count()).select_from(SignalOutbox).where(SignalOutbox.delivered_at.is_(None))) == 0


async def test_temporal_down_the_signup_is_queued_and_delivered_when_it_returns(
    settings: Settings, session_factory, tmp_path: Path
) -> None:
    port = free_port()
    down = settings.model_copy(
        update={"temporal_address": f"127.0.0.1:{port}", "signal_relay_interval_seconds": 0.2}
    )
    app = create_app(down, temporal=await connect(down, lazy=True))
    async for http in _http(app):
        r = await http.post("/v1/events/signup", json=SIGNUP)
        assert r.status_code == 202, r.text
        assert r.json()["queued"] is True and r.json()["live"] is False
        assert (await http.get("/healthz")).status_code == 503
        # the database-only routes do not wait on Temporal
        r = await http.post("/v1/usage/check", json={"customer_id": "acme-1", "metric": "ai_requests", "quantity": 1})
        assert r.status_code == 200 and r.json()["allowed"] is True
        r = await http.post("/v1/events/activation", json={"customer_id": "acme-1", "fact": "used_api"})
        assert r.status_code == 202 and r.json()["status"] == "queued"
        with session_factory() as s:
            assert s.get(Customer, "acme-1") is not None
            pending = list(s.scalars(select(SignalOutbox).order_by(SignalOutbox.id)))
            assert [p.kind for p in pending] == ["signup", "activation"]
            assert all(p.delivered_at is None for p in pending)

        # Temporal comes back on the same address: the relay delivers, in order, unasked
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(temporal_bins.test_server_binary()), port=port
        )
        try:
            await ensure_search_attributes(env.client)
            async with build_worker(env.client, down, session_factory):
                handle = env.client.get_workflow_handle(customer_workflow_id("acme-1"))

                async def delivered(handle=handle) -> bool:
                    try:
                        state = await handle.query(CustomerWorkflow.state)
                    except Exception:  # noqa: BLE001 - not started yet
                        return False
                    return "used_api" in state.activation_facts

                await eventually(delivered, timeout=30)
                with session_factory() as s:
                    assert all(p.delivered_at is not None for p in s.scalars(select(SignalOutbox)))
        finally:
            await env.shutdown()
