"""Record the dunning histories the replay tests keep (tests/histories/dunning_*.json and
customer_dunning_*.json): DunningWorkflow's paths and the entity's side of them.

Run after an intended, versioned change to workflows/dunning/ (or its schedule,
workflows/dunning/schedule.py, or its effects, workflows/dunning/effects.py) or
workflows/dunning/entity.py:

    .venv/bin/python -m tests.record_dunning_histories vN   # a new suffix

Everything runs for real on the harness of tests/record_histories.py (time-skipping
server, SQLite, the worker from worker.py) with the real Stripe activities against a
localstripe of its own: the retries charge the invoices there. The entity hears the
failures as the Stripe hand-over builds them (typed payloads around real invoices).
The histories carry ids only (tests/test_replay.py checks them for addresses).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from activities.stripe import StripeActivities
from lifecycle.billing.client import make_stripe_client
from lifecycle.contracts.events import PaymentMethodAdded, StripeSubscription
from lifecycle.contracts.ids import customer_workflow_id
from tests.record_histories import main, save, stripe_recording
from tests.support.dunning import exists, failing_customer
from tests.support.helpers import timeline
from tests.support.stripe import FAILING_CARD, GOOD_CARD, add_card


class RecordingFailed(RuntimeError):
    pass


async def _until(what: str, probe: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await probe():
        if time.monotonic() > deadline:
            raise RecordingFailed(f"{what}: not reached in {timeout} s")
        await asyncio.sleep(0.1)


async def _retried(rec: Any, cid: str, n: int) -> bool:
    return len([e for e in timeline(rec.sessions, cid) if e.kind == "dunning_retry"]) >= n


async def record(suffix: str = "v1") -> list[Path]:
    written: list[Path] = []
    async with stripe_recording("record-dunning") as rec:
        stripe = make_stripe_client(rec.settings)
        acts = StripeActivities(stripe, rec.sessions, localstripe_compat=True)
        env, client = rec.env, rec.client

        # 1. recovered on the second retry (a new card between the retries), with a
        #    second failed invoice joining and voided
        a = await failing_customer(client, rec.settings, rec.sessions, acts, stripe)
        await _until("dunning a", lambda: exists(a.dunning))
        await a.fail("stripe:evt_join", invoice="in_joined_record", amount=4900)
        await env.sleep(timedelta(hours=12))
        await a.voided("in_joined_record")
        await env.sleep(timedelta(hours=13))  # retry 1: declined
        add_card(stripe, a.stripe_customer, GOOD_CARD)  # the new default
        await env.sleep(timedelta(days=2))  # retry 2 pays
        if (outcome := await a.dunning.result()) != "recovered":
            raise RecordingFailed(f"a: {outcome}")
        await _until("a active", lambda: a.stage_is("active"))

        # 2. never recovered: warned, reminded, suspended, canceled at day 21; a hard
        #    decline on a joined invoice on the way
        b = await failing_customer(client, rec.settings, rec.sessions, acts, stripe)
        await _until("dunning b", lambda: exists(b.dunning))
        await env.sleep(timedelta(days=2))
        await b.fail("stripe:evt_hard", invoice="in_hard_record", code="expired_card", amount=4900)
        await env.sleep(timedelta(days=20))
        if (outcome := await b.dunning.result()) != "canceled":
            raise RecordingFailed(f"b: {outcome}")
        await _until("b canceled", lambda: b.stage_is("canceled"))

        # 3. a new card (v18 on): a hard decline, then a new default card that fails too
        #    (retried at once, declined), heard again (nothing), a card attached but not the
        #    default (nothing charged), then made the default: paid at once
        c = await failing_customer(client, rec.settings, rec.sessions, acts, stripe, fail=False)
        await c.fail(code="expired_card")
        await _until("dunning c", lambda: exists(c.dunning))
        await env.sleep(timedelta(hours=2))
        x = add_card(stripe, c.stripe_customer, FAILING_CARD)
        await c.tell("stripe:evt_card_x", PaymentMethodAdded(payment_method_id=x))
        await _until("c retried", lambda: _retried(rec, c.cid, 1))
        await c.tell("stripe:evt_card_x_again", PaymentMethodAdded(payment_method_id=x))
        y = add_card(stripe, c.stripe_customer, GOOD_CARD, default=False)
        await c.tell("stripe:evt_card_y_attached", PaymentMethodAdded(payment_method_id=y))
        await env.sleep(timedelta(hours=2))
        stripe.v1.customers.update(c.stripe_customer, params={"invoice_settings": {"default_payment_method": y}})
        await c.tell("stripe:evt_card_y_default", PaymentMethodAdded(payment_method_id=y))
        if (outcome := await c.dunning.result()) != "recovered":
            raise RecordingFailed(f"c: {outcome}")
        await _until("c active", lambda: c.stage_is("active"))

        # 4. (v19 on) Stripe itself cancels the subscription mid-dunning
        #    (customer.subscription.deleted): the subscription_ended signal ends it canceled
        d = await failing_customer(client, rec.settings, rec.sessions, acts, stripe)
        await _until("dunning d", lambda: exists(d.dunning))
        await env.sleep(timedelta(days=2))
        stripe.v1.subscriptions.cancel(d.sub.stripe_subscription_id)
        await d.tell("stripe:evt_sub_deleted_record", StripeSubscription(
            stripe_subscription_id=d.sub.stripe_subscription_id, stripe_customer_id=d.stripe_customer,
            status="canceled", plan="business", interval="month", event_type="customer.subscription.deleted",
        ))
        if (outcome := await d.dunning.result()) != "canceled":
            raise RecordingFailed(f"d: {outcome}")
        await _until("d canceled", lambda: d.stage_is("canceled"))

        await asyncio.sleep(1)  # let the last workflow tasks complete before reading histories
        histories = {
            "dunning_recovered": a.dunning_id(),
            "dunning_canceled": b.dunning_id(),
            "customer_dunning_recovered": customer_workflow_id(a.cid),
            "customer_dunning_canceled": customer_workflow_id(b.cid),
            "dunning_new_card": c.dunning_id(),
            "customer_dunning_new_card": customer_workflow_id(c.cid),
            "dunning_subscription_ended": d.dunning_id(),
            "customer_dunning_subscription_ended": customer_workflow_id(d.cid),
        }
        for name, wid in histories.items():
            written.append(await save(client, name, wid, suffix))
    return written


if __name__ == "__main__":
    main(record)
