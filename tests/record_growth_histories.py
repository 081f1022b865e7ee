"""Record the growth histories the replay tests keep (tests/histories/*renewal*.json,
offer_*.json, customer_retention*.json): the renewal reminders (sent; moved to a new
period), the expansion offer and the team promotion, with the entity that decided them.

Run after an intended, versioned change to workflows/growth/renewal.py, workflows/growth/offer.py or
workflows/growth/entity.py:

    .venv/bin/python -m tests.record_growth_histories vN   # a new suffix

Keep the old files: replaying histories recorded by older code is what proves a change
is safe for running workflows. Billing reaches the entity as the Stripe hand-over sends it
(``stripe.subscription``), usage as the usage crossings do (``usage_threshold``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from lifecycle.contracts.billing import SubscriptionRequest
from lifecycle.contracts.customer import CustomerEvent, CustomerState
from lifecycle.contracts.events import (
    Activation,
    InvoicePaid,
    StripeSubscription,
    UsageThreshold,
    customer_event,
)
from lifecycle.contracts.ids import campaign_workflow_id, customer_workflow_id, renewal_workflow_id
from lifecycle.contracts.stages import ACTIVE, PAST_DUE
from lifecycle.contracts.tiers import Tiers, tiers_from_catalog
from starter.signals.send import signal_customer, start_input
from tests.record_histories import HERE, Recording, recording, save
from tests.support.helpers import add_customer
from workflows.customer import CustomerWorkflow

NAMES = (
    "customer_retention", "customer_retention_held", "customer_retention_plan_change",
    "renewal_moved", "renewal_reminded",
    "offer_team_promotion", "offer_expansion",
    "customer_data_errors", "renewal_data_error", "usage_nudge_data_error", "customer_price_periods",
)


async def _active(rec: Recording, cid: str, plan: str, stage: str = ACTIVE, tiers: Tiers | None = None) -> None:
    add_customer(rec.sessions, cid, plan=plan)
    start = start_input(rec.settings, cid, plan)
    if tiers is not None:  # a snapshot taken before a tier existed
        start = replace(start, tiers=tiers)
    start = replace(start, state=CustomerState(
        customer_id=cid, plan=plan, stage=stage, stage_changed_at=dt.datetime.now(dt.UTC)))
    await signal_customer(rec.client, cid, CustomerEvent(f"signup:{cid}", "signup"), start=start,
                          task_queue=rec.settings.task_queue)


async def _send(rec: Recording, cid: str, event_id: str, payload: object) -> None:
    await signal_customer(rec.client, cid, customer_event(event_id, payload))  # type: ignore[arg-type]


def _annual(cid: str, plan: str, period_end: dt.datetime) -> StripeSubscription:
    return StripeSubscription(stripe_subscription_id=f"sub_{cid}", stripe_customer_id=f"cus_{cid}",
                              status="active", plan=plan, interval="year", current_period_end=period_end,
                              event_type="customer.subscription.updated")


async def record(suffix: str = "v1") -> list[Path]:
    async with recording("record") as rec:
        client, env = rec.client, rec.env
        now = await env.get_current_time()
        # rec-r1: annual Professional; the 30-day reminder goes out, then the period moves
        # (the old reminders are dropped, new ones start); three invitations promote Business;
        # two high-usage periods in a row make the expansion offer
        first, moved = now + timedelta(days=60), now + timedelta(days=400)
        await _active(rec, "rec-r1", "professional")
        await _send(rec, "rec-r1", "sub:1", _annual("rec-r1", "professional", first))
        await asyncio.sleep(1)
        await env.sleep(timedelta(days=31))
        await asyncio.sleep(1)
        await _send(rec, "rec-r1", "sub:2", _annual("rec-r1", "professional", moved))
        await client.get_workflow_handle(renewal_workflow_id("rec-r1", first)).result()
        for i in range(3):
            await _send(rec, "rec-r1", f"invite:{i}", Activation(fact="invited_teammate"))
        start = now - timedelta(days=30)
        for i in range(2):
            a, b = start + timedelta(days=30 * i), start + timedelta(days=30 * (i + 1))
            await _send(rec, "rec-r1", f"usage:{i}", UsageThreshold(
                metric="ai_requests", threshold=80, used=8000, limit=10000, limit_kind="hard",
                period_start=a, period_end=b, plan="professional"))
        team = campaign_workflow_id("rec-r1", "team-promotion")
        expansion = campaign_workflow_id("rec-r1", "expansion", f"{start + timedelta(days=30):%Y%m%d}")
        await asyncio.sleep(1)
        await client.get_workflow_handle(team).result()
        await client.get_workflow_handle(expansion).result()
        # rec-r2: annual Starter; both reminders go out and the renewal workflow ends
        end = await env.get_current_time() + timedelta(days=40)
        await _active(rec, "rec-r2", "starter")
        await _send(rec, "rec-r2", "sub:1", _annual("rec-r2", "starter", end))
        await asyncio.sleep(1)
        await env.sleep(timedelta(days=34))
        await client.get_workflow_handle(renewal_workflow_id("rec-r2", end)).result()
        # rec-r3: in dunning, three seats: the promotion is held back, and goes out once the
        # invoice is paid
        await _active(rec, "rec-r3", "professional", PAST_DUE)
        at = await env.get_current_time()
        await _send(rec, "rec-r3", "usage:seats", UsageThreshold(
            metric="seats", threshold=100, used=3, limit=3, limit_kind="hard",
            period_start=at - timedelta(days=5), period_end=at + timedelta(days=25), plan="professional"))
        await _send(rec, "rec-r3", "paid:1", InvoicePaid(invoice_id="in_r3", stripe_subscription_id="sub_r3",
                                                         amount_due_cents=4900))
        await asyncio.sleep(1)
        await client.get_workflow_handle(campaign_workflow_id("rec-r3", "team-promotion")).result()
        # rec-r4: annual Professional moves to annual Business: the reminders are dropped,
        # then start again for the same date on the new terms
        end4 = await env.get_current_time() + timedelta(days=90)
        await _active(rec, "rec-r4", "professional")
        await _send(rec, "rec-r4", "sub:1", _annual("rec-r4", "professional", end4))
        await asyncio.sleep(1)
        first_run = (await client.get_workflow_handle(renewal_workflow_id("rec-r4", end4)).describe()).run_id
        await _send(rec, "rec-r4", "sub:2", _annual("rec-r4", "business", end4))
        await client.get_workflow_handle(renewal_workflow_id("rec-r4", end4), run_id=first_run).result()
        # rec-r5: Professional is missing from the entity's snapshot: the usage nudges, the
        # expansion offer and both renewal reminders are recorded as data errors and skipped
        catalog_now = tiers_from_catalog()
        lacking = Tiers([t for t in catalog_now.tiers if t.code != "professional"], catalog_now.metric_units)
        end5 = await env.get_current_time() + timedelta(days=40)
        await _active(rec, "rec-r5", "professional", tiers=lacking)
        await _send(rec, "rec-r5", "sub:1", _annual("rec-r5", "professional", end5))
        at5 = await env.get_current_time()
        for i in range(2):
            a, b = at5 - timedelta(days=30 * (1 - i)), at5 + timedelta(days=30 * i)
            await _send(rec, "rec-r5", f"usage:{i}", UsageThreshold(
                metric="ai_requests", threshold=80, used=8000, limit=10000, limit_kind="hard",
                period_start=a, period_end=b, plan="professional"))
        nudge = campaign_workflow_id("rec-r5", "usage", "ai_requests", f"{at5:%Y%m%d}", "80")
        await asyncio.sleep(1)
        await env.sleep(timedelta(days=34))
        await client.get_workflow_handle(renewal_workflow_id("rec-r5", end5)).result()
        # rec-r6: Professional billed weekly moves to Starter monthly: a downgrade by the year
        await _active(rec, "rec-r6", "professional")
        await _send(rec, "rec-r6", "sub:1", replace(
            _annual("rec-r6", "professional", await env.get_current_time() + timedelta(days=5)), interval="week"))
        await asyncio.sleep(1)
        await client.get_workflow_handle(customer_workflow_id("rec-r6")).execute_update(
            CustomerWorkflow.change_subscription,
            SubscriptionRequest(action="change", request_id="r6", plan="starter", interval="month"))
        await asyncio.sleep(2)
        return [
            await save(client, "customer_data_errors", customer_workflow_id("rec-r5"), suffix),
            await save(client, "renewal_data_error", renewal_workflow_id("rec-r5", end5), suffix),
            await save(client, "usage_nudge_data_error", nudge, suffix),
            await save(client, "customer_price_periods", customer_workflow_id("rec-r6"), suffix),
            await save(client, "customer_retention", customer_workflow_id("rec-r1"), suffix),
            await save(client, "customer_retention_plan_change", customer_workflow_id("rec-r4"), suffix),
            await save(client, "customer_retention_held", customer_workflow_id("rec-r3"), suffix),
            await save(client, "renewal_moved", renewal_workflow_id("rec-r1", first), suffix),
            await save(client, "renewal_reminded", renewal_workflow_id("rec-r2", end), suffix),
            await save(client, "offer_team_promotion", team, suffix),
            await save(client, "offer_expansion", expansion, suffix),
        ]


def main() -> None:
    """``python -m tests.record_growth_histories SUFFIX``: these histories' names are their
    own (new workflows start at v1), so only a suffix one of them already has is refused."""
    if len(sys.argv) != 2 or not re.fullmatch(r"v\d+", sys.argv[1]):
        raise SystemExit("usage: python -m tests.record_growth_histories vN  (a suffix these histories lack)")
    suffix = sys.argv[1]
    if kept := [n for n in NAMES if (HERE / f"{n}.{suffix}.json").exists()]:
        raise SystemExit(f"{suffix} is taken ({kept[0]}.{suffix}.json): keep old histories, pick a new suffix")
    for path in asyncio.run(record(suffix)):
        print("wrote", path)


if __name__ == "__main__":
    main()
