"""Ops on the command line against the Temporal dev server (its visibility answers the
list): `lifecycle customers list` by stage, plan, campaign and what it waits for, paged;
`lifecycle customer action`; `lifecycle audit`; the why-waiting part of `customer show`."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from lifecycle.contracts.customer import CustomerEvent, CustomerState
from lifecycle.contracts.stages import ACTIVE
from lifecycle.settings import Settings
from starter.signals.send import signal_customer, start_input
from tests.support.helpers import add_customer, eventually
from worker import build_worker

CLI = str(Path(sys.prefix) / "bin" / "lifecycle")


@pytest.fixture
async def live(dev_env: WorkflowEnvironment, settings: Settings, session_factory) -> AsyncIterator[Settings]:
    target = dev_env.client.service_client.config.target_host
    configured = settings.model_copy(update={"temporal_address": target})
    async with build_worker(dev_env.client, configured, session_factory):
        yield configured


async def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LIFECYCLE_DATABASE_URL": settings.database_url,
        "LIFECYCLE_TEMPORAL_ADDRESS": settings.temporal_address,
        "LIFECYCLE_TASK_QUEUE": settings.task_queue,
        "COLUMNS": "250",
    }
    return await asyncio.to_thread(
        subprocess.run, [CLI, *args], env=env, capture_output=True, text=True, timeout=60
    )


def customers_in(out: str, *candidates: str) -> set[str]:
    return {c for c in candidates if c in out}


async def test_customers_list_filters_pages_and_actions_show_in_the_audit(
    dev_env: WorkflowEnvironment, live: Settings, session_factory
) -> None:
    client = dev_env.client
    ids = {"a": "ls-a", "b": "ls-b", "c": "ls-c"}
    plans = {"a": "starter", "b": "professional", "c": "starter"}
    for key, cid in ids.items():
        add_customer(session_factory, cid, plan=plans[key])
        start = start_input(live, cid, plans[key])
        if key == "c":  # a paying customer: no trial, no campaigns
            start = replace(start, state=CustomerState(
                customer_id=cid, plan="starter", stage=ACTIVE, stage_changed_at=dt.datetime.now(dt.UTC)))
        await signal_customer(client, cid, CustomerEvent(f"signup:{cid}", "signup"), start=start,
                              task_queue=live.task_queue)

    async def listed(*args: str, want: set[str]) -> str:
        async def probe() -> str | None:
            result = await cli(live, "customers", "list", *args)
            assert result.returncode == 0, result.stdout + result.stderr
            return result.stdout if customers_in(result.stdout, *ids.values()) == want else None
        return await eventually(probe, timeout=30, interval=0.5)

    await listed("--stage", "trialing", want={"ls-a", "ls-b"})
    await listed("--campaign", "onboarding", want={"ls-a", "ls-b"})

    cancel = await cli(live, "customer", "action", "ls-b", "cancel-campaign", "onboarding",
                       "--reason", "asked us to stop the tips", "--actor", "grace@support")
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr
    assert "onboarding cancelled" in cancel.stdout

    await listed("--campaign", "onboarding", want={"ls-a"})
    await listed("--plan", "professional", want={"ls-b"})
    await listed("--stage", "active", want={"ls-c"})
    out = await listed("--waiting-for", "timer", "--stage", "trialing", "--plan", "starter", want={"ls-a"})
    assert "customer-ls-a/onboarding" not in out and "onboarding: timer" in out and "trial: timer" in out
    await listed("--waiting-for", "timer", "--campaign", "onboarding", want={"ls-a"})
    await listed("--waiting-for", "timer", "--campaign", "trial", want={"ls-a", "ls-b"})
    # ls-a's day-1 tip is the only step due within two days (ls-b's trial reminder is on day 11)
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")
    await listed("--next-step-before", soon, want={"ls-a"})
    await listed("--next-step-before", "2026-01-01T00:00:00", "--stage", "trialing", want=set())

    first = await cli(live, "customers", "list", "--stage", "trialing", "--limit", "1")
    assert len(customers_in(first.stdout, *ids.values())) == 1 and "--page-token" in first.stdout
    token = first.stdout.split("--page-token", 1)[1].split()[0]
    second = await cli(live, "customers", "list", "--stage", "trialing", "--limit", "1", "--page-token", token)
    assert customers_in(first.stdout + second.stdout, *ids.values()) == {"ls-a", "ls-b"}

    bad = await cli(live, "customers", "list", "--waiting-for", "godot")
    assert bad.returncode == 2 and "expected one of" in bad.stdout

    refused = await cli(live, "customer", "action", "ls-a", "extend-grace", "--days", "3", "--reason", "goodwill")
    assert refused.returncode == 1 and "no dunning is running" in refused.stdout
    no_reason = await cli(live, "customer", "action", "ls-a", "pause")
    assert no_reason.returncode == 1 and "reason is required" in no_reason.stdout

    trail = await cli(live, "audit", "--actor", "grace@support")
    assert "ls-b" in trail.stdout and "cancel-campaign" in trail.stdout and "asked us to stop" in trail.stdout
    assert "ls-a" not in trail.stdout

    show = await cli(live, "customer", "show", "ls-a")
    assert show.returncode == 0, show.stderr
    assert "why waiting" in show.stdout and "tip_first_project" in show.stdout and "timer until" in show.stdout
    assert "stripe customer: none" in show.stdout
