"""Record the pre-dunning histories the replay tests keep: the card-expiry campaign's own
(``card_expiry_*.<child suffix>.json``) and the entity hearing its default card change
(``customer_card_expiry.<entity suffix>.json``).

    .venv/bin/python -m tests.record_card_expiry_histories vN vM   # campaign suffix, entity suffix

Each file written must be new (an existing one is refused): keep old histories.
"""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from lifecycle.contracts.cards import card_expires_at
from lifecycle.contracts.customer import CustomerEvent, CustomerState
from lifecycle.contracts.events import DefaultCard, customer_event
from lifecycle.contracts.ids import campaign_workflow_id, customer_workflow_id
from lifecycle.contracts.stages import ACTIVE
from starter.signals.send import signal_customer, start_input
from tests.record_histories import HERE, recording, save
from tests.support.helpers import add_customer

NAMES = (("card_expiry_replaced", "child"), ("card_expiry_reminded", "child"), ("customer_card_expiry", "entity"))


def _card(pm: str, exp: datetime, last4: str) -> CustomerEvent:
    return customer_event(f"card:{pm}:{uuid.uuid4().hex[:6]}", DefaultCard(
        payment_method_id=pm, brand="visa", last4=last4, exp_month=exp.month, exp_year=exp.year))


async def _until(env: WorkflowEnvironment, when: datetime) -> None:
    await env.sleep(when - await env.get_current_time())


async def record(child_suffix: str, entity_suffix: str) -> list[Path]:
    async with recording("record") as rec:
        client, settings, sessions, env = rec.client, rec.settings, rec.sessions, rec.env
        cid = "rec-c1"
        add_customer(sessions, cid)
        now = await env.get_current_time()
        # a paying customer (no trial: nothing but the card in this history)
        start = replace(start_input(settings, cid, "starter"), state=CustomerState(
            customer_id=cid, plan="starter", stage=ACTIVE, stage_changed_at=now))
        await signal_customer(client, cid, CustomerEvent(f"signup:{cid}", "signup"),
                              start=start, task_queue=settings.task_queue)
        a = datetime(*(now + timedelta(days=75)).timetuple()[:2], 1, tzinfo=UTC)
        b = datetime(*(now + timedelta(days=400)).timetuple()[:2], 1, tzinfo=UTC)
        # card A: its 30-day reminder goes out, then card B replaces it (A's 7-day one is dropped)
        await signal_customer(client, cid, _card("pm_a", a, "0341"))
        await asyncio.sleep(1)
        await _until(env, card_expires_at(a.month, a.year) - timedelta(days=29))
        await signal_customer(client, cid, _card("pm_b", b, "4242"))
        child_a = campaign_workflow_id(cid, "card-expiry", f"{a:%Y-%m}")
        await client.get_workflow_handle(child_a).result()
        # card B: both reminders, then the default card is removed
        await _until(env, card_expires_at(b.month, b.year) - timedelta(days=6))
        child_b = campaign_workflow_id(cid, "card-expiry", f"{b:%Y-%m}")
        await client.get_workflow_handle(child_b).result()
        await signal_customer(client, cid, customer_event("card:none", DefaultCard(payment_method_id=None)))
        await asyncio.sleep(1)
        return [
            await save(client, "card_expiry_replaced", child_a, child_suffix),
            await save(client, "card_expiry_reminded", child_b, child_suffix),
            await save(client, "customer_card_expiry", customer_workflow_id(cid), entity_suffix),
        ]


def main() -> None:
    if len(sys.argv) != 3 or not all(re.fullmatch(r"v\d+", a) for a in sys.argv[1:]):
        raise SystemExit(f"usage: python -m {__name__} vN vM  (campaign suffix, entity suffix)")
    child_suffix, entity_suffix = sys.argv[1], sys.argv[2]
    for name, role in NAMES:
        path = HERE / f"{name}.{child_suffix if role == 'child' else entity_suffix}.json"
        if path.exists():
            raise SystemExit(f"{path.name} exists: keep old histories, pick a new suffix")
    for path in asyncio.run(record(child_suffix, entity_suffix)):
        print("wrote", path)


if __name__ == "__main__":
    main()
