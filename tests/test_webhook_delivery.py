"""Webhooks to the product on the time-skipping server: the real worker and activities, a
real HTTP receiver that verifies every request with ``standardwebhooks``, SQLite and
PostgreSQL. Retries, order per customer, redelivery and the 3-day disable."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from lifecycle.contracts.customer import CustomerEvent
from lifecycle.contracts.ids import webhook_workflow_id
from lifecycle.db import make_engine, make_session_factory, session_scope
from lifecycle.models import WebhookDelivery, WebhookEndpoint
from lifecycle.settings import Settings
from lifecycle.webhooks.endpoints import add_endpoint
from starter.api.app import create_app
from starter.signals.send import signal_customer, start_input
from tests.support.helpers import add_customer, eventually
from tests.support.webhook_receiver import Receiver, receiving
from tests.support.webhook_workflows import PublishInput, PublishWorkflow
from worker import WORKFLOWS, build_activities

CLI = str(Path(sys.prefix) / "bin" / "lifecycle")


@dataclass
class Hooks:
    env: WorkflowEnvironment
    settings: Settings
    sessions: sessionmaker[Session]
    receiver: Receiver

    def endpoint(self, events: list[str], path: str = "/hooks") -> str:
        with session_scope(self.sessions) as s:
            new = add_endpoint(s, self.receiver.url(path), events, engine_url=self.settings.public_url,
                                 allow_private=True, https_only=False)
            self.receiver.secrets[path] = new.secret
            return new.endpoint.id

    def deliveries(self, customer_id: str | None = None) -> list[WebhookDelivery]:
        with self.sessions() as s:
            q = select(WebhookDelivery).order_by(WebhookDelivery.id)
            if customer_id:
                q = q.where(WebhookDelivery.customer_id == customer_id)
            return list(s.scalars(q))

    async def publish(self, customer_id: str, type: str, *ns: int) -> None:
        await self.env.client.execute_workflow(
            PublishWorkflow.run, PublishInput(customer_id, type, [{"n": n} for n in ns]),
            id=f"publish-{uuid.uuid4().hex[:8]}", task_queue=self.settings.task_queue,
        )


def fast(settings: Settings, **more: object) -> Settings:
    return settings.model_copy(update={
        "webhook_retry_initial_seconds": 0.2, "webhook_retry_max_seconds": 0.5, "webhook_timeout_seconds": 5.0,
        **more,
    })


@contextlib.asynccontextmanager
async def running(ts_env: WorkflowEnvironment, config: Settings) -> AsyncIterator[Hooks]:
    """The real worker (and the publishing test workflow) and a receiver."""
    engine = make_engine(config.database_url)
    sessions = make_session_factory(engine)
    worker = Worker(ts_env.client, task_queue=config.task_queue, workflows=[*WORKFLOWS, PublishWorkflow],
                    activities=build_activities(config, sessions))
    try:
        async with worker, receiving() as receiver:
            yield Hooks(ts_env, config, sessions, receiver)
    finally:
        engine.dispose()


@pytest.fixture
async def hooks(ts_env: WorkflowEnvironment, db_url: str, settings: Settings) -> AsyncIterator[Hooks]:
    async with running(ts_env, fast(settings, database_url=db_url)) as h:
        yield h


def ids_of(events: list[dict]) -> list[int]:
    return [e["data"]["n"] for e in events]


async def test_a_signup_is_delivered_signed_and_verified_with_standardwebhooks(hooks: Hooks) -> None:
    hooks.endpoint(["customer.stage_changed", "campaign.finished"])
    cid = f"wh-{uuid.uuid4().hex[:8]}"
    add_customer(hooks.sessions, cid)
    await signal_customer(hooks.env.client, cid, CustomerEvent(f"signup:{cid}", "signup"),
                          start=start_input(hooks.settings, cid, "starter"), task_queue=hooks.settings.task_queue)
    await hooks.receiver.until(lambda r: len(r.accepted()) >= 1)
    request = hooks.receiver.requests[0]
    assert request.verified and {"webhook-id", "webhook-timestamp", "webhook-signature"} <= set(request.headers)
    event = request.event
    assert event["type"] == "customer.stage_changed"
    assert event["id"] == request.webhook_id and event["id"].startswith("evt_")
    assert event["data"] == {"customer_id": cid, "from_stage": None, "to_stage": "trialing",
                             "cause": "signup", "plan": "starter"}
    # the trial runs out (no card): the product hears both campaigns end and the stage move, in order
    await hooks.env.sleep(timedelta(days=15))
    await hooks.receiver.until(lambda r: any(e["data"].get("to_stage") == "expired" for e in r.accepted()))
    seen = [(e["type"], e["data"].get("campaign") or e["data"].get("to_stage")) for e in hooks.receiver.accepted()]
    assert seen[0] == ("customer.stage_changed", "trialing")
    assert seen.index(("campaign.finished", "trial")) < seen.index(("customer.stage_changed", "expired"))
    assert all(r.verified for r in hooks.receiver.requests)
    assert all(d.status == "delivered" and d.status_code == 200 for d in hooks.deliveries(cid))


async def test_a_receiver_that_answers_500_then_200_gets_the_event_exactly_once(hooks: Hooks) -> None:
    hooks.endpoint(["usage.threshold_crossed"])
    hooks.receiver.script["/hooks"] = [500, 500]
    await hooks.publish("wh-retry", "usage.threshold_crossed", 1)
    await hooks.receiver.until(lambda r: len(r.accepted()) == 1)
    handle = hooks.env.client.get_workflow_handle(webhook_workflow_id("wh-retry"))
    await handle.result()  # the lane is empty: nothing more will be sent
    assert [r.answered for r in hooks.receiver.requests] == [500, 500, 200]
    assert len({r.webhook_id for r in hooks.receiver.requests}) == 1  # one event id on every attempt
    [d] = hooks.deliveries("wh-retry")
    assert (d.status, d.attempts, d.status_code, d.error) == ("delivered", 3, 200, None)
    assert d.response_head and '"ok": true' in d.response_head and d.latency_ms is not None


async def test_order_per_customer_holds_while_one_event_is_retried(hooks: Hooks) -> None:
    hooks.endpoint(["usage.threshold_crossed"])
    refusals = {"left": 3}

    def refuse_first_of_a(event: dict) -> int | None:  # wh-a's first event is refused 3 times
        if event["data"]["customer_id"] == "wh-a" and event["data"]["n"] == 1 and refusals["left"]:
            refusals["left"] -= 1
            return 503
        return None

    hooks.receiver.rule = refuse_first_of_a
    await hooks.publish("wh-a", "usage.threshold_crossed", 1, 2, 3, 4, 5)
    await hooks.publish("wh-b", "usage.threshold_crossed", 10, 11)
    await hooks.receiver.until(lambda r: len(r.accepted()) == 7)
    by_customer: dict[str, list[int]] = {}
    for e in hooks.receiver.accepted():
        by_customer.setdefault(e["data"]["customer_id"], []).append(e["data"]["n"])
    assert by_customer == {"wh-a": [1, 2, 3, 4, 5], "wh-b": [10, 11]}
    refused = [r for r in hooks.receiver.requests if r.answered != 200]
    first_ok = next(i for i, r in enumerate(hooks.receiver.requests)
                    if r.answered == 200 and r.event["data"]["customer_id"] == "wh-a")
    # nothing of wh-a went out before its first event got through
    assert [(r.event["data"]["customer_id"], r.event["data"]["n"]) for r in refused] == [("wh-a", 1)] * 3
    assert all(r.event["data"]["customer_id"] != "wh-a" or r.event["data"]["n"] == 1
               for r in hooks.receiver.requests[:first_ok])


async def test_redeliver_sends_the_same_event_id_again(hooks: Hooks) -> None:
    hooks.endpoint(["subscription.changed"])
    await hooks.publish("wh-re", "subscription.changed", 7)
    await hooks.receiver.until(lambda r: len(r.accepted()) == 1)
    [first] = hooks.deliveries("wh-re")
    env = {**os.environ, "LIFECYCLE_DATABASE_URL": hooks.settings.database_url,
           "LIFECYCLE_TEMPORAL_ADDRESS": hooks.env.client.service_client.config.target_host,
           "LIFECYCLE_TASK_QUEUE": hooks.settings.task_queue, "COLUMNS": "200"}
    done = subprocess.run([CLI, "webhooks", "redeliver", str(first.id)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    await hooks.receiver.until(lambda r: len(r.accepted()) == 2)
    a, b = hooks.receiver.accepted()
    assert a == b and hooks.receiver.requests[0].webhook_id == hooks.receiver.requests[1].webhook_id
    rows = hooks.deliveries("wh-re")
    await eventually(lambda: all(d.status == "delivered" for d in hooks.deliveries("wh-re")))
    assert [d.redelivery_of for d in rows] == [None, first.id]
    missing = subprocess.run([CLI, "webhooks", "redeliver", "999999"], env=env, capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode == 1 and "unknown delivery 999999" in missing.stdout


async def test_an_endpoint_failing_for_three_days_is_disabled(
    ts_env: WorkflowEnvironment, sqlite_url: str, settings: Settings
) -> None:
    """Time-skipping: the delivery is retried with backoff (from a minute, doubling, up to
    six hours) for the whole window, then given up and the endpoint disabled."""
    slow = settings.model_copy(update={"database_url": sqlite_url, "webhook_retry_initial_seconds": 60.0,
                                       "webhook_retry_max_seconds": 6 * 3600.0})
    async with running(ts_env, slow) as hooks:
        await _fails_for_three_days(hooks)


async def _fails_for_three_days(hooks: Hooks) -> None:
    endpoint = hooks.endpoint(["campaign.finished"])
    hooks.receiver.default = 500
    await hooks.publish("wh-down", "campaign.finished", 1)
    await eventually(lambda: hooks.deliveries("wh-down") and hooks.deliveries("wh-down")[0].attempts >= 1)
    await hooks.env.sleep(timedelta(days=2))
    assert hooks.deliveries("wh-down")[0].status == "pending"  # still retrying two days on
    # Temporal schedules no retry past the window, so the last one comes within six hours of it
    await hooks.env.sleep(timedelta(days=1, hours=1))
    await eventually(lambda: hooks.deliveries("wh-down")[0].status == "failed")
    [d] = hooks.deliveries("wh-down")
    assert d.status == "failed" and d.status_code == 500 and d.attempts > 3
    with hooks.sessions() as s:
        ep = s.get(WebhookEndpoint, endpoint)
        assert ep is not None and ep.disabled_at is not None and "failed for 72 hours" in (ep.disabled_reason or "")
    # a disabled endpoint takes no new events, and shows in /metrics
    await hooks.publish("wh-down", "campaign.finished", 2)
    assert len(hooks.deliveries("wh-down")) == 1
    app = create_app(hooks.settings, temporal=hooks.env.client)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api.test"
    ) as http:
        text = (await http.get("/metrics")).text
    assert 'lifecycle_webhook_endpoints{state="disabled"} 1.0' in text
    assert 'lifecycle_webhook_deliveries{status="failed"} 1.0' in text
    # ops see it in the CLI: the endpoint disabled, the delivery failed with its last answer
    env = {**os.environ, "LIFECYCLE_DATABASE_URL": hooks.settings.database_url, "COLUMNS": "300"}
    listed = subprocess.run([CLI, "webhooks", "list"], env=env, capture_output=True, text=True, timeout=60)
    assert endpoint in listed.stdout and "DISABLED" in listed.stdout and "failed for 72 hours" in listed.stdout
    failed = subprocess.run([CLI, "webhooks", "deliveries", "--failed"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert "wh-down" in failed.stdout and "failed" in failed.stdout and "500" in failed.stdout
    assert "(disabled)" in failed.stdout

