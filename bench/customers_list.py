"""How fast `lifecycle customers list` answers as customers grow: one visibility query a
page on the Temporal dev server (its SQLite visibility store in a file, the slowest one we
ship).

It starts N customer entities carrying the search attributes the entity keeps
(LifecycleStage, Plan, Campaigns, Waits, NextStepAt: what its campaigns report) — without
a worker, so nothing else runs and the figures are the visibility store's alone — then
times pages of the list for each kind of filter (the first page and four further on
through the token), and one full count.

Run: ``.venv/bin/python bench/customers_list.py [--customers N] [--json]``. The last line
with ``--json`` is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stack import Procs, log, pct, start_temporal  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.common import SearchAttributePair, TypedSearchAttributes  # noqa: E402

from lifecycle.contracts.customer import CustomerState, CustomerWorkflowInput  # noqa: E402
from lifecycle.contracts.ids import customer_workflow_id  # noqa: E402
from lifecycle.contracts.ops import CampaignWait, entity_waits  # noqa: E402
from lifecycle.contracts.policy import CampaignPolicy  # noqa: E402
from lifecycle.contracts.search_attributes import (  # noqa: E402
    CAMPAIGNS,
    CUSTOMER_ID,
    LIFECYCLE_STAGE,
    NEXT_STEP_AT,
    PLAN,
    WAITS,
)
from starter.ops.listing import Filters, list_customers  # noqa: E402

STAGES = ("trialing", "active", "past_due", "canceled")
PLANS = ("starter", "professional", "business", "enterprise")
WAITS_KINDS = ("timer", "quiet_hours", "paused")
QUEUE = "bench-no-worker"  # nothing polls it: the workflows just exist, as far as visibility goes


async def populate(client: Client, n: int, concurrency: int) -> float:
    now = dt.datetime.now(dt.UTC)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def one(i: int) -> None:
        cid = f"bench-{i:06d}"
        stage, plan = STAGES[i % len(STAGES)], PLANS[(i // 4) % len(PLANS)]
        reports = [CampaignWait("trial", f"customer-{cid}/trial", "timer", now + dt.timedelta(days=1 + i % 13))]
        if i % 3:  # two in three are in onboarding too
            reports.append(CampaignWait("onboarding", f"customer-{cid}/onboarding", WAITS_KINDS[i % len(WAITS_KINDS)],
                                        now + dt.timedelta(hours=i % 72)))
        waits, next_at = entity_waits(reports)
        await client.start_workflow(
            "CustomerWorkflow",
            CustomerWorkflowInput(customer_id=cid, plan=plan, policy=CampaignPolicy(),
                                  state=CustomerState(customer_id=cid, plan=plan, stage=stage)),
            id=customer_workflow_id(cid), task_queue=QUEUE,
            search_attributes=TypedSearchAttributes([
                SearchAttributePair(CUSTOMER_ID, cid), SearchAttributePair(PLAN, plan),
                SearchAttributePair(LIFECYCLE_STAGE, stage),
                SearchAttributePair(CAMPAIGNS, sorted(r.campaign for r in reports)),
                SearchAttributePair(WAITS, waits),
                *([SearchAttributePair(NEXT_STEP_AT, next_at)] if next_at else []),
            ]),
        )

    async def starter() -> None:  # a fixed pool of starters: no 100,000 pending tasks
        while not queue.empty():
            i = queue.get_nowait()
            await one(i)
            if i and i % 10_000 == 0:
                log(f"  {i:,} started")

    started = time.perf_counter()
    await asyncio.gather(*(starter() for _ in range(concurrency)))
    return time.perf_counter() - started


async def time_pages(client: Client, f: Filters, rounds: int, page_size: int) -> dict[str, Any]:
    first, later, rows = [], [], 0
    for _ in range(rounds):
        t = time.perf_counter()
        page = await list_customers(client, f, page_size=page_size)
        first.append((time.perf_counter() - t) * 1000)
        rows = len(page.rows)
        token = page.next_page_token
        for _ in range(4):  # four pages on
            if not token:
                break
            t = time.perf_counter()
            page = await list_customers(client, f, page_size=page_size, page_token=token)
            later.append((time.perf_counter() - t) * 1000)
            token = page.next_page_token
    def ms(xs: list[float], q: float) -> float | None:  # None: no such page (the first was the last)
        return round(pct(xs, q), 1) if xs else None

    return {"rows_first_page": rows, "first_page_ms_p50": ms(first, 50), "first_page_ms_p95": ms(first, 95),
            "later_page_ms_p50": ms(later, 50), "later_page_ms_p95": ms(later, 95)}


async def run(args: argparse.Namespace, address: str) -> dict[str, Any]:
    client = await Client.connect(address)
    log(f"starting {args.customers:,} entities (two in three with onboarding) ...")
    seconds = await populate(client, args.customers, args.concurrency)
    log(f"  {seconds:.1f} s; waiting for visibility to catch up")
    want = args.customers
    now = dt.datetime.now(dt.UTC)
    while (await client.count_workflows("WorkflowType = 'CustomerWorkflow'")).count < want:
        await asyncio.sleep(0.5)
    cases = {
        "stage": Filters(stage="trialing"),
        "stage+plan": Filters(stage="active", plan="business"),
        "campaign": Filters(campaign="onboarding"),
        "waiting_for": Filters(waiting_for="paused"),
        "waiting_for+campaign+stage": Filters(waiting_for="quiet_hours", campaign="onboarding", stage="trialing"),
        "next_step_before": Filters(next_step_before=now + dt.timedelta(hours=6)),
        "next_step_before+plan": Filters(next_step_before=now + dt.timedelta(hours=6), plan="enterprise"),
    }
    results: dict[str, Any] = {"customers": args.customers, "populate_s": round(seconds, 1),
                               "page_size": args.page_size}
    for name, f in cases.items():
        results[name] = await time_pages(client, f, args.rounds, args.page_size)
    t = time.perf_counter()
    count = await client.count_workflows("WorkflowType = 'CustomerWorkflow' AND LifecycleStage = 'trialing'")
    results["count_trialing"] = {"count": count.count, "ms": round((time.perf_counter() - t) * 1000, 1)}
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--customers", type=int, default=10_000)
    p.add_argument("--page-size", type=int, default=50)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object last")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        procs = Procs(Path(tmp))
        try:
            # a SQLite file, as `lifecycle dev` keeps it (in memory, the dev server lost its
            # namespace past 80,000 workflows here)
            _proc, address = start_temporal(procs, db_file=Path(tmp) / "temporal.db")
            try:
                results = asyncio.run(run(args, address))
            except Exception:
                log((Path(tmp) / "temporal.log").read_text(errors="replace")[-3000:])  # why the server failed
                raise
        finally:
            procs.stop()
    print(f"customers: {results['customers']:,} (started in {results['populate_s']} s), page size {args.page_size}")
    for name, r in results.items():
        if isinstance(r, dict) and "first_page_ms_p50" in r:
            later = "-" if r["later_page_ms_p50"] is None else f"{r['later_page_ms_p50']:.1f}"
            print(f"  {name:28} first page p50 {r['first_page_ms_p50']:7.1f} ms  p95 {r['first_page_ms_p95']:7.1f} ms"
                  f"   later pages p50 {later:>7} ms  ({r['rows_first_page']} rows)")
    print(f"  count trialing: {results['count_trialing']['count']:,} in {results['count_trialing']['ms']} ms")
    if args.json:
        print(json.dumps(results, sort_keys=True))
    sys.stdout.flush()
    os._exit(0)  # the SDK can crash at interpreter teardown (COMPONENTS.md); the figures are out


if __name__ == "__main__":
    raise SystemExit(main())
