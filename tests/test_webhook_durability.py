"""A receiver that is down while the worker is SIGKILLed still gets every event, in order
per customer: the Temporal dev server, ``lifecycle worker`` as its own process (killed with
SIGKILL, then started again), and a real HTTP receiver that verifies with ``standardwebhooks``."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from lifecycle.contracts.customer import CustomerEvent
from lifecycle.contracts.events import UsageThreshold, customer_event
from lifecycle.db import database, session_scope
from lifecycle.models import WebhookDelivery
from lifecycle.settings import Settings
from lifecycle.webhooks.endpoints import add_endpoint
from starter.signals.send import signal_customer, start_input
from tests.support.helpers import add_customer, eventually
from tests.support.webhook_receiver import Receiver

pytestmark = pytest.mark.e2e
CLI = str(Path(sys.prefix) / "bin" / "lifecycle")


def worker(settings: Settings, target: str, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LIFECYCLE_DATABASE_URL": settings.database_url,
        "LIFECYCLE_TEMPORAL_ADDRESS": target,
        "LIFECYCLE_TASK_QUEUE": settings.task_queue,
        "LIFECYCLE_WEBHOOK_RETRY_INITIAL_SECONDS": "0.5",
        "LIFECYCLE_WEBHOOK_RETRY_MAX_SECONDS": "1",
        "LIFECYCLE_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver listens on 127.0.0.1
        "LIFECYCLE_EMAIL_QUIET_HOURS_START": "00:00",
        "LIFECYCLE_EMAIL_QUIET_HOURS_END": "00:00",
    }
    return subprocess.Popen([CLI, "worker"], env=env, stdout=log_path.open("ab"), stderr=subprocess.STDOUT)


async def test_a_receiver_down_across_a_worker_sigkill_still_gets_every_event(
    dev_env: WorkflowEnvironment, settings: Settings, session_factory, tmp_path: Path
) -> None:
    client = dev_env.client
    target = client.service_client.config.target_host
    receiver = Receiver()  # not started: the product is down
    with session_scope(session_factory) as s:
        new = add_endpoint(s, receiver.url(), ["customer.stage_changed", "usage.threshold_crossed"],
                           engine_url=settings.public_url, allow_private=True, https_only=False)
        receiver.secrets["/hooks"] = new.secret
    now = dt.datetime.now(dt.UTC)
    run = uuid.uuid4().hex[:6]

    async def sign_up_and_cross(cid: str) -> None:
        add_customer(session_factory, cid)
        await signal_customer(client, cid, CustomerEvent(f"signup:{cid}", "signup"),
                              start=start_input(settings, cid, "starter"), task_queue=settings.task_queue)
        await signal_customer(client, cid, customer_event(f"usage:{cid}", UsageThreshold(
            metric="ai_requests", threshold=80, used=800, limit=1000, period_start=now,
            period_end=now + dt.timedelta(days=30), plan="starter")))

    def pending_with_errors() -> list[WebhookDelivery]:
        with session_factory() as s:
            return list(s.scalars(select(WebhookDelivery).where(WebhookDelivery.attempts > 0)))

    log = tmp_path / "worker.log"
    first = worker(settings, target, log)
    before = [f"dur-{run}-{i}" for i in range(4)]
    try:
        for cid in before:
            await sign_up_and_cross(cid)
        # the deliveries are being retried against the receiver that is down
        await eventually(lambda: len({d.customer_id for d in pending_with_errors()}) == len(before), timeout=60)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    after = [f"dur-{run}-k{i}" for i in range(3)]  # events while no worker runs at all
    for cid in after:
        await sign_up_and_cross(cid)
    await receiver.start()
    second = worker(settings, target, log)
    try:
        customers = before + after
        await receiver.until(lambda r: {(e["data"]["customer_id"], e["type"]) for e in r.accepted()} >= {
            (c, t) for c in customers for t in ("customer.stage_changed", "usage.threshold_crossed")
        }, timeout=120)
        await eventually(lambda: _all_delivered(settings), timeout=60)
    finally:
        second.terminate()
        second.wait(timeout=30)
        await receiver.stop()
    assert all(r.verified for r in receiver.requests)
    for cid in customers:  # at least once, and in order: the stage change before the crossing
        types = [e["type"] for e in receiver.accepted() if e["data"]["customer_id"] == cid]
        firsts = list(dict.fromkeys(types))
        assert firsts == ["customer.stage_changed", "usage.threshold_crossed"], (cid, types)


def _all_delivered(settings: Settings) -> bool:
    with database(settings.database_url) as sessions, sessions() as s:
        statuses = {d.status for d in s.scalars(select(WebhookDelivery))}
    return statuses == {"delivered"}
