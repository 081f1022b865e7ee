"""`lifecycle signals`: what waits for Temporal, and delivering it by hand."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lifecycle.contracts.customer import CustomerEvent
from lifecycle.contracts.ids import customer_workflow_id
from lifecycle.db import session_scope
from lifecycle.models import SignalOutbox
from lifecycle.settings import Settings
from lifecycle.signal_outbox import enqueue
from tests.conftest import free_port
from tests.support.helpers import add_customer

CLI = str(Path(sys.prefix) / "bin" / "lifecycle")


def run(settings: Settings, address: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ, "LIFECYCLE_DATABASE_URL": settings.database_url, "LIFECYCLE_TEMPORAL_ADDRESS": address,
        "LIFECYCLE_TASK_QUEUE": settings.task_queue, "COLUMNS": "200",
    }
    return subprocess.run([CLI, "signals", *args], env=env, capture_output=True, text=True, timeout=60)


async def test_signals_lists_the_queue_and_delivers_it(settings: Settings, session_factory, ts_env) -> None:
    add_customer(session_factory, "sig-1")
    with session_scope(session_factory) as s:
        enqueue(s, "sig-1", CustomerEvent("signup:sig-1", "signup"), start_plan="starter")

    listed = run(settings, "127.0.0.1:1")
    assert listed.returncode == 0, listed.stderr
    assert "1 event(s) waiting" in listed.stdout and "signup:sig-1" in listed.stdout

    down = run(settings, f"127.0.0.1:{free_port()}", "deliver")
    assert down.returncode == 1 and "failed 1" in down.stdout
    with session_factory() as s:
        row = s.query(SignalOutbox).one()
        assert row.delivered_at is None and row.attempts == 1 and row.last_error

    up = run(settings, ts_env.client.service_client.config.target_host, "deliver")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "delivered 1" in up.stdout
    desc = await ts_env.client.get_workflow_handle(customer_workflow_id("sig-1")).describe()
    assert desc.id == "customer-sig-1"
    assert "nothing queued" in run(settings, "127.0.0.1:1").stdout
