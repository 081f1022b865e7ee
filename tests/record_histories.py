"""Record the workflow histories the replay tests keep (tests/histories/*.json).

Run after an intended, versioned change to workflow code:

    .venv/bin/python -m tests.record_histories

Keep the old files too (rename them with a suffix): replaying histories recorded by
older code is what proves a change is safe for running workflows.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from lifecycle.db import make_engine, make_session_factory, upgrade
from lifecycle.messages import CustomerEvent, campaign_workflow_id, customer_workflow_id
from lifecycle.settings import Settings
from lifecycle.temporal import ensure_search_attributes, test_server_binary
from starter.events import signal_customer, start_input
from tests.helpers import add_customer
from worker import build_worker

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
        client = env.client
        async with build_worker(client, settings, sessions):
            # 1. a customer who activates, adds a card mid-trial and converts
            add_customer(sessions, "rec-1")
            await signal_customer(
                client, "rec-1", CustomerEvent("signup:rec-1", "signup"),
                start=start_input(settings, "rec-1", "starter"), task_queue="record",
            )
            await env.sleep(timedelta(hours=2))
            await signal_customer(
                client, "rec-1", CustomerEvent("act:1", "activation", {"fact": "created_first_project"})
            )
            await env.sleep(timedelta(days=5))
            await signal_customer(client, "rec-1", CustomerEvent("pm:1", "payment_method_added"))
            await env.sleep(timedelta(days=10))
            await client.get_workflow_handle(campaign_workflow_id("rec-1", "trial")).result()
            await client.get_workflow_handle(campaign_workflow_id("rec-1", "onboarding")).result()
            await asyncio.sleep(1)
            # 2. a customer whose entity continues-as-new
            add_customer(sessions, "rec-2")
            start = replace(start_input(settings, "rec-2", "starter"), max_events_per_run=2)
            await signal_customer(
                client, "rec-2", CustomerEvent("signup:rec-2", "signup"), start=start, task_queue="record"
            )
            for i in range(3):
                await signal_customer(client, "rec-2", CustomerEvent(f"a{i}", "activation", {"fact": f"f{i}"}))
            await asyncio.sleep(2)

            for name, wid, run in [
                ("customer_converted", customer_workflow_id("rec-1"), None),
                ("trial_converted", campaign_workflow_id("rec-1", "trial"), None),
                ("onboarding_skip", campaign_workflow_id("rec-1", "onboarding"), None),
                ("customer_continue_as_new", customer_workflow_id("rec-2"), "first"),
            ]:
                handle = client.get_workflow_handle(wid)
                if run == "first":
                    handle = client.get_workflow_handle(wid, run_id=(await handle.describe()).raw_description.workflow_execution_info.first_run_id)
                history = await handle.fetch_history()
                path = HERE / f"{name}.{suffix}.json"
                path.write_text(history.to_json())
                written.append(path)
        engine.dispose()
    await env.shutdown()
    return written


if __name__ == "__main__":
    for p in asyncio.run(record()):
        print("wrote", p)
