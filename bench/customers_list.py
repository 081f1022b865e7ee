"""How fast `lifecycle customers list` answers as customers grow: one visibility query a
page on the Temporal dev server (its SQLite visibility store, the slowest one we ship).

It starts N customer entities and N onboarding children carrying the search attributes
the workflows keep (LifecycleStage, Plan, Campaigns; Campaign, WaitingFor, NextStepAt) —
without a worker, so nothing else runs — then times pages of the list for each kind of
filter (first page and a page further on through the token), and one full count.

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

from lifecycle.contracts.campaigns import OnboardingInput  # noqa: E402
from lifecycle.contracts.customer import CustomerState, CustomerWorkflowInput  # noqa: E402
from lifecycle.contracts.ids import campaign_workflow_id, customer_workflow_id  # noqa: E402
from lifecycle.contracts.policy import CampaignPolicy  # noqa: E402
from lifecycle.contracts.search_attributes import (  # noqa: E402
    CAMPAIGN,
    CAMPAIGNS,
    CUSTOMER_ID,
    LIFECYCLE_STAGE,
    NEXT_STEP_AT,
    PLAN,
    WAITING_FOR,
)
from starter.ops.listing import Filters, list_customers  # noqa: E402

STAGES = ("trialing", "active", "past_due", "canceled")
PLANS = ("starter", "professional", "business", "enterprise")
WAITS = ("timer", "quiet_hours", "paused")
QUEUE = "bench-no-worker"  # nothing polls it: the workflows just exist, as far as visibility goes


async def populate(client: Client, n: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)
    now = dt.datetime.now(dt.UTC)

    async def one(i: int) -> None:
        cid = f"bench-{i:06d}"
        stage, plan = STAGES[i % len(STAGES)], PLANS[(i // 4) % len(PLANS)]
        onboarding = i % 3 != 0
        async with sem:
            await client.start_workflow(
                "CustomerWorkflow",
                CustomerWorkflowInput(customer_id=cid, plan=plan, policy=CampaignPolicy(),
                                      state=CustomerState(customer_id=cid, plan=plan, stage=stage)),
                id=customer_workflow_id(cid), task_queue=QUEUE,
                search_attributes=TypedSearchAttributes([
                    SearchAttributePair(CUSTOMER_ID, cid), SearchAttributePair(PLAN, plan),
                    SearchAttributePair(LIFECYCLE_STAGE, stage),
                    SearchAttributePair(CAMPAIGNS, ["onboarding", "trial"] if onboarding else ["trial"]),
                ]),
            )
            if onboarding:
                await client.start_workflow(
                    "OnboardingWorkflow", OnboardingInput(customer_id=cid, steps=[]),
                    id=campaign_workflow_id(cid, "onboarding"), task_queue=QUEUE,
                    search_attributes=TypedSearchAttributes([
                        SearchAttributePair(CUSTOMER_ID, cid), SearchAttributePair(PLAN, plan),
                        SearchAttributePair(LIFECYCLE_STAGE, stage),
                        SearchAttributePair(CAMPAIGN, "onboarding"),
                        SearchAttributePair(WAITING_FOR, WAITS[i % len(WAITS)]),
                        SearchAttributePair(NEXT_STEP_AT, now + dt.timedelta(hours=i % 72)),
                    ]),
                )

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
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
    return {"rows_first_page": rows, "first_page_ms_p50": round(pct(first, 50), 1),
            "first_page_ms_p95": round(pct(first, 95), 1), "later_page_ms_p50": round(pct(later, 50), 1),
            "later_page_ms_p95": round(pct(later, 95), 1)}


async def run(args: argparse.Namespace, address: str) -> dict[str, Any]:
    client = await Client.connect(address)
    log(f"starting {args.customers:,} entities (+ onboarding children for two in three) ...")
    seconds = await populate(client, args.customers, args.concurrency)
    log(f"  {seconds:.1f} s; waiting for visibility to catch up")
    want = args.customers
    while (await client.count_workflows("WorkflowType = 'CustomerWorkflow'")).count < want:
        await asyncio.sleep(0.5)
    cases = {
        "stage": Filters(stage="trialing"),
        "stage+plan": Filters(stage="active", plan="business"),
        "campaign": Filters(campaign="onboarding"),
        "waiting_for": Filters(waiting_for="paused"),
        "waiting_for+campaign+stage": Filters(waiting_for="quiet_hours", campaign="onboarding", stage="trialing"),
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
            _proc, address = start_temporal(procs)  # in memory: SQLite visibility, as the dev stack
            results = asyncio.run(run(args, address))
        finally:
            procs.stop()
    print(f"customers: {results['customers']:,} (started in {results['populate_s']} s), page size {args.page_size}")
    for name, r in results.items():
        if isinstance(r, dict) and "first_page_ms_p50" in r:
            print(f"  {name:28} first page p50 {r['first_page_ms_p50']:7.1f} ms  p95 {r['first_page_ms_p95']:7.1f} ms"
                  f"   later pages p50 {r['later_page_ms_p50']:7.1f} ms  ({r['rows_first_page']} rows)")
    print(f"  count trialing: {results['count_trialing']['count']:,} in {results['count_trialing']['ms']} ms")
    if args.json:
        print(json.dumps(results, sort_keys=True))
    sys.stdout.flush()
    os._exit(0)  # the SDK can crash at interpreter teardown (COMPONENTS.md); the figures are out


if __name__ == "__main__":
    raise SystemExit(main())
