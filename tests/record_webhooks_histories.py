"""Record the webhook histories the replay tests keep (tests/histories/*webhook*.json).

Run after an intended, versioned change to workflows/webhook_delivery.py or to what the
entity publishes:

    .venv/bin/python -m tests.record_webhooks_histories vN   # a new suffix

On the shared harness (time-skipping server, the real worker, a fresh SQLite database) and
a real HTTP receiver: a customer whose signup is delivered after two refusals (the entity's
publish, the delivery workflow's retries), and an endpoint that refuses for three days and
is disabled (the give-up path).
"""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import timedelta
from pathlib import Path

from lifecycle.contracts.customer import CustomerEvent
from lifecycle.contracts.ids import customer_workflow_id, webhook_workflow_id
from lifecycle.db import session_scope
from lifecycle.webhooks.endpoints import add_endpoint
from starter.signals.send import signal_customer, start_input
from tests.record_histories import HERE, recording, save
from tests.support.helpers import add_customer
from tests.support.webhook_receiver import receiving


async def record(suffix: str = "v1") -> list[Path]:
    async with recording("record", webhook_retry_initial_seconds=0.2, webhook_retry_max_seconds=0.5) as rec, \
            receiving() as receiver:
        client, settings, sessions = rec.client, rec.settings, rec.sessions
        with session_scope(sessions) as s:
            new = add_endpoint(s, receiver.url("/ok"), ["customer.stage_changed"], engine_url=settings.public_url,
                               allow_private=True, https_only=False)
            receiver.secrets["/ok"] = new.secret
        receiver.script["/ok"] = [500, 500]
        add_customer(sessions, "rec-w1")
        await signal_customer(client, "rec-w1", CustomerEvent("signup:rec-w1", "signup"),
                              start=start_input(settings, "rec-w1", "starter"), task_queue=settings.task_queue)
        await receiver.until(lambda r: len(r.accepted("/ok")) == 1)
        delivered = client.get_workflow_handle(webhook_workflow_id("rec-w1"))
        await delivered.result()
        return [
            await save(client, "customer_webhooks", customer_workflow_id("rec-w1"), suffix),
            await save(client, "webhook_delivery_retried", webhook_workflow_id("rec-w1"), suffix),
        ]


async def record_disabled(suffix: str) -> list[Path]:
    """Slow retries (a minute, doubling, up to six hours) over three skipped days."""
    async with recording("record", webhook_retry_initial_seconds=60.0,
                         webhook_retry_max_seconds=6 * 3600.0) as rec, receiving(default=500) as receiver:
        client, settings, sessions, env = rec.client, rec.settings, rec.sessions, rec.env
        with session_scope(sessions) as s:
            new = add_endpoint(s, receiver.url("/down"), ["customer.stage_changed"], engine_url=settings.public_url,
                               allow_private=True, https_only=False)
            receiver.secrets["/down"] = new.secret
        add_customer(sessions, "rec-w2")
        await signal_customer(client, "rec-w2", CustomerEvent("signup:rec-w2", "signup"),
                              start=start_input(settings, "rec-w2", "starter"), task_queue=settings.task_queue)
        await receiver.until(lambda r: len(r.requests) >= 1)
        await env.sleep(timedelta(days=3, hours=1))
        await client.get_workflow_handle(webhook_workflow_id("rec-w2")).result()
        return [await save(client, "webhook_delivery_disabled", webhook_workflow_id("rec-w2"), suffix)]


async def record_all(suffix: str = "v1") -> list[Path]:
    return [*await record(suffix), *await record_disabled(suffix)]


NAMES = ("customer_webhooks", "webhook_delivery_retried", "webhook_delivery_disabled")


def main_new() -> None:
    """Like the harness's main, but a suffix is taken only by these files (they began at v1,
    a suffix older recorders' files already have)."""
    if len(sys.argv) != 2 or not re.fullmatch(r"v\d+", sys.argv[1]):
        raise SystemExit("usage: python -m tests.record_webhooks_histories vN  (a suffix these files lack)")
    suffix = sys.argv[1]
    taken = [n for n in NAMES if (HERE / f"{n}.{suffix}.json").exists()]
    if taken:
        raise SystemExit(f"{suffix} is taken ({taken[0]}.{suffix}.json): keep old histories, pick a new suffix")
    for path in asyncio.run(record_all(suffix)):
        print("wrote", path)


if __name__ == "__main__":
    main_new()
