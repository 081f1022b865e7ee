"""Record the usage-nudge histories the replay tests keep (tests/histories/*usage*.json).

Run after an intended, versioned change to the usage workflow code:

    .venv/bin/python -m tests.record_usage_histories

Keep the old files (rename them with a suffix): replaying histories recorded by older
code is what proves a change is safe for running workflows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
from dataclasses import replace
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from lifecycle.db import make_engine, make_session_factory, upgrade
from lifecycle.messages import ACTIVE, PAST_DUE, CustomerEvent, CustomerState, customer_workflow_id
from lifecycle.settings import Settings
from lifecycle.temporal import ensure_search_attributes, test_server_binary
from lifecycle.usage import UsageService
from starter.events import signal_customer, start_input
from starter.usage_signals import deliver
from tests.helpers import add_customer
from worker import build_worker
from workflows.usage_nudge import usage_workflow_id

HERE = Path(__file__).parent / "histories"


async def record(suffix: str = "v1") -> list[Path]:
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(test_server_binary()))
    await ensure_search_attributes(env.client)
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/record.db"
        upgrade(url)
        settings = Settings(database_url=url, task_queue="record", _env_file=None)  # type: ignore[call-arg]
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        svc = UsageService(sessions)
        client = env.client
        now = dt.datetime.now(dt.UTC)
        async with build_worker(client, settings, sessions):
            for cid, stage in (("rec-u1", ACTIVE), ("rec-u2", PAST_DUE)):
                add_customer(sessions, cid)
                start = replace(start_input(settings, cid, "starter"), state=CustomerState(
                    customer_id=cid, plan="starter", stage=stage, stage_changed_at=now))
                await signal_customer(client, cid, CustomerEvent(f"signup:{cid}", "signup"),
                                      start=start, task_queue="record")
            # rec-u1: crosses 80 %, the signal is delivered twice, then 100 %
            nudge = svc.ingest([{"customer_id": "rec-u1", "metric": "ai_requests", "quantity": 850,
                                 "idempotency_key": "a"}]).crossings
            await deliver(client, svc, nudge)
            await deliver(client, svc, nudge)
            limit = svc.check({"customer_id": "rec-u1", "metric": "ai_requests", "quantity": 150}).crossings
            await deliver(client, svc, limit)
            # rec-u2: in dunning, the nudge is skipped
            await deliver(client, svc, svc.ingest([{"customer_id": "rec-u2", "metric": "ai_requests",
                                                    "quantity": 900, "idempotency_key": "b"}]).crossings)
            await asyncio.sleep(2)
            child = usage_workflow_id("rec-u1", "ai_requests", nudge[0].period_start, 80)
            await client.get_workflow_handle(child).result()
            for name, wid in [
                ("customer_usage_thresholds", customer_workflow_id("rec-u1")),
                ("customer_usage_dunning_skip", customer_workflow_id("rec-u2")),
                ("usage_nudge_80", child),
            ]:
                history = await client.get_workflow_handle(wid).fetch_history()
                path = HERE / f"{name}.{suffix}.json"
                path.write_text(history.to_json())
                written.append(path)
        engine.dispose()
    await env.shutdown()
    return written


if __name__ == "__main__":
    for p in asyncio.run(record()):
        print("wrote", p)
