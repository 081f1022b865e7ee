"""Record the usage-nudge histories the replay tests keep (tests/histories/*usage*.json).

Run after an intended, versioned change to the usage workflow code:

    .venv/bin/python -m tests.record_usage_histories vN   # a new suffix

Keep the old files (rename them with a suffix): replaying histories recorded by older
code is what proves a change is safe for running workflows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import replace
from pathlib import Path

from lifecycle.contracts.customer import CustomerEvent, CustomerState
from lifecycle.contracts.ids import customer_workflow_id, usage_workflow_id
from lifecycle.contracts.stages import ACTIVE, PAST_DUE
from lifecycle.usage import UsageService
from starter.signals.send import signal_customer, start_input
from starter.signals.usage import deliver
from tests.record_histories import main, recording, save
from tests.support.helpers import add_customer


async def record(suffix: str = "v1") -> list[Path]:
    async with recording("record") as rec:
        client, settings, sessions = rec.client, rec.settings, rec.sessions
        svc = UsageService(sessions)
        now = dt.datetime.now(dt.UTC)
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
        return [
            await save(client, "customer_usage_thresholds", customer_workflow_id("rec-u1"), suffix),
            await save(client, "customer_usage_dunning_skip", customer_workflow_id("rec-u2"), suffix),
            await save(client, "usage_nudge_80", child, suffix),
        ]


if __name__ == "__main__":
    main(record)
