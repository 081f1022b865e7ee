"""Dunning by Stripe's rules (issue 18): the races and the retry mode ``stripe``, on the
time-skipping server with the real workflow code, localstripe and the database."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from lifecycle.contracts.dunning import BY_CUSTOMER, PAID, ExtendGrace, InvoiceClosed, RetryNow
from lifecycle.contracts.ops import WAIT_TIMER
from lifecycle.settings import Settings
from tests.support.dunning import cases, exists, failing_customer, mails, run_row
from tests.support.helpers import eventually
from worker import WORKFLOWS, build_activities, build_worker
from workflows.dunning import DunningWorkflow

WARNING = "dunning_warning"


def charges(stripe_client, stripe_customer: str) -> int:
    pis = stripe_client.v1.payment_intents.list(params={"limit": 100}).data
    return len([p for p in pis if p.customer == stripe_customer])


def uncached_worker(client: Client, settings: Settings, session_factory) -> Worker:
    """The worker of worker.py without its cache (no sticky queue): the next worker takes
    the workflow's next task at once after this one stops."""
    return Worker(client, task_queue=settings.task_queue, workflows=list(WORKFLOWS),
                  activities=build_activities(settings, session_factory), max_cached_workflows=0)


@pytest.mark.parametrize("action", ["retry_now", "extend_grace"])
async def test_an_ops_action_arriving_with_the_payment_answers_and_the_run_ends(
    ts_env: WorkflowEnvironment, client: Client, stripe_settings: Settings, session_factory, synced,
    stripe_acts, stripe_client, action,
):
    """The payment and the update reach the dunning in the same workflow task (the worker
    is down while both arrive): the update answers the outcome, the run ends recovered."""
    async with uncached_worker(client, stripe_settings, session_factory):
        f = await failing_customer(client, stripe_settings, session_factory, stripe_acts, stripe_client)
        await eventually(lambda: exists(f.dunning))
        await eventually(lambda: mails(session_factory, f.cid) == [WARNING])

        async def on_timer() -> bool:
            return (await f.dunning.query(DunningWorkflow.waiting)).waiting.kind == WAIT_TIMER

        await eventually(on_timer)
    charged_before = charges(stripe_client, f.stripe_customer)
    await f.dunning.signal(DunningWorkflow.invoice_closed,
                           InvoiceClosed("stripe:evt_paid_race", f.invoice, PAID, BY_CUSTOMER))
    if action == "retry_now":
        update = asyncio.create_task(f.dunning.execute_update(DunningWorkflow.retry_now, RetryNow("race")))
    else:
        update = asyncio.create_task(
            f.dunning.execute_update(DunningWorkflow.extend_grace, ExtendGrace(3, "promised to pay")))
    await asyncio.sleep(1)  # the update is admitted before a worker takes the task
    async with build_worker(client, stripe_settings, session_factory):
        answer = await asyncio.wait_for(update, timeout=40)
        assert await asyncio.wait_for(f.dunning.result(), timeout=20) == "recovered"
    if action == "retry_now":
        assert answer == "already recovered: nothing charged"
    else:
        assert answer.next_step is None  # nothing left to do: no grace to move
    assert charges(stripe_client, f.stripe_customer) == charged_before  # the retry charged nothing
    row = run_row(session_factory, f.dunning_id())
    assert row is not None and row.state == "recovered" and row.ended and not row.suspended
    assert cases(session_factory, f.cid)[f.invoice].outcome == "recovered"
