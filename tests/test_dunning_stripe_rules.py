"""Dunning by Stripe's rules (issue 18): the races and the retry mode ``stripe``, on the
time-skipping server with the real workflow code, localstripe and the database."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from lifecycle.contracts.dunning import BY_CUSTOMER, PAID, ExtendGrace, InvoiceClosed, RetryNow
from lifecycle.contracts.events import StripeSubscription
from lifecycle.contracts.ops import WAIT_TIMER
from lifecycle.models import DunningCase
from lifecycle.settings import Settings
from tests.support.dunning import (
    cases,
    exists,
    failing_customer,
    mails,
    run_row,
    run_rows,
    usage_check,
)
from tests.support.helpers import eventually, timeline
from tests.support.stripe import GOOD_CARD, add_card, charges
from tests.test_dunning_workflow import policy_with, retries
from worker import WORKFLOWS, build_activities, build_worker
from workflows.dunning import DunningWorkflow

WARNING, SUSPENDED, ENDED = "dunning_warning", "dunning_suspended", "dunning_ended"


def uncached_worker(client: Client, settings: Settings, session_factory) -> Worker:
    """The worker of worker.py without its cache (no sticky queue): the next worker takes
    the workflow's next task at once after this one stops."""
    return Worker(client, task_queue=settings.task_queue, workflows=list(WORKFLOWS),
                  activities=build_activities(settings, session_factory), max_cached_workflows=0)


async def quiet_on_its_timer(handle: WorkflowHandle[Any, Any], *, its_step: bool = True) -> None:
    """Until the dunning waits on its timer with no task left to hand out (its signals to the
    entity answered), twice: a task handed to a worker as it stops would hold the next ones
    back (the time-skipping server times it out only when its clock moves)."""
    async def quiet() -> bool:
        if its_step and (await handle.query(DunningWorkflow.waiting)).waiting.kind != WAIT_TIMER:
            return False
        described = (await handle.describe()).raw_description
        last = (await handle.fetch_history()).events[-1].event_type
        return not described.HasField("pending_workflow_task") and not described.pending_activities and (
            last in (EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, EventType.EVENT_TYPE_TIMER_STARTED))

    await eventually(quiet)
    await asyncio.sleep(0.5)
    await eventually(quiet)


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

        await quiet_on_its_timer(f.dunning)
    charged_before = charges(stripe_client, f.stripe_customer)
    await f.dunning.signal(DunningWorkflow.invoice_closed,
                           InvoiceClosed("stripe:evt_paid_race", f.invoice, PAID, BY_CUSTOMER))

    async def signal_in_history() -> bool:  # (a task taken as the worker stopped holds it back)
        events = (await f.dunning.fetch_history()).events
        return any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED for e in events)

    await eventually(signal_in_history, timeout=30)
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


def stripe_mode(stripe_settings: Settings) -> Settings:
    return stripe_settings.model_copy(update={"dunning_retry_mode": "stripe"})


def ended_entries(session_factory, cid: str) -> list[dict]:
    return [e.detail for e in timeline(session_factory, cid) if e.kind == "dunning_ended"]


async def test_stripe_mode_waits_for_3ds_then_ends_when_stripe_cancels(
    ts_env: WorkflowEnvironment, client: Client, stripe_settings: Settings, session_factory, synced,
    stripe_acts, stripe_client,
):
    """Retry mode stripe: a payment waiting for 3-D Secure (no next_payment_attempt) is not
    "Stripe gave up": no cancel through the grace and after it; when Stripe itself cancels
    the subscription the dunning ends canceled, as Stripe's."""
    settings = stripe_mode(stripe_settings)
    async with build_worker(client, settings, session_factory):
        f = await failing_customer(client, settings, session_factory, stripe_acts, stripe_client, fail=False)
        await f.action_required("https://invoice.stripe.com/i/acct_test/authenticate")
        await eventually(lambda: exists(f.dunning))
        await ts_env.sleep(timedelta(days=8))  # past the grace: suspended, still waiting
        await eventually(lambda: SUSPENDED in mails(session_factory, f.cid))
        sub_id = f.sub.stripe_subscription_id
        assert stripe_client.v1.subscriptions.retrieve(sub_id).status != "canceled"
        assert ended_entries(session_factory, f.cid) == [] and ENDED not in mails(session_factory, f.cid)
        assert (await f.dunning.describe()).status.name == "RUNNING"
        assert usage_check(session_factory, f.cid)["payment_overdue"] is True

        stripe_client.v1.subscriptions.cancel(sub_id)  # Stripe's "if all retries fail: cancel"
        await f.tell("stripe:evt_sub_deleted", StripeSubscription(
            stripe_subscription_id=sub_id, stripe_customer_id=f.stripe_customer, status="canceled",
            plan="business", interval="month", event_type="customer.subscription.deleted",
        ))
        assert await f.dunning.result() == "canceled"
        assert ended_entries(session_factory, f.cid) == [
            {"action": "cancel", "by": "stripe", "days": pytest.approx(8, abs=0.1), "open_invoices": [f.invoice]}
        ]
        await eventually(lambda: f.stage_is("canceled"))
        row = run_row(session_factory, f.dunning_id())
        assert row is not None and row.state == "canceled" and not row.suspended
        assert usage_check(session_factory, f.cid)["allowed"] is True
        assert stripe_client.v1.invoices.retrieve(f.invoice).status == "open"  # nothing paid


async def test_stripe_mode_hard_decline_waits_for_the_end_day(
    ts_env: WorkflowEnvironment, client: Client, stripe_settings: Settings, session_factory, synced,
    stripe_acts, stripe_client,
):
    """Retry mode stripe: a hard decline Stripe will not retry (no next_payment_attempt)
    waits for the policy's end day (21) before the end action cancels, in Stripe."""
    settings = stripe_mode(stripe_settings)
    async with build_worker(client, settings, session_factory):
        f = await failing_customer(client, settings, session_factory, stripe_acts, stripe_client, fail=False)
        await f.fail(code="expired_card", next_attempt=None)
        await eventually(lambda: exists(f.dunning))
        sub_id = f.sub.stripe_subscription_id
        await ts_env.sleep(timedelta(days=20))
        await eventually(lambda: SUSPENDED in mails(session_factory, f.cid))
        assert stripe_client.v1.subscriptions.retrieve(sub_id).status != "canceled"
        assert ended_entries(session_factory, f.cid) == []
        await ts_env.sleep(timedelta(days=1, hours=1))  # day 21: the end action
        assert await f.dunning.result() == "canceled"
        assert stripe_client.v1.subscriptions.retrieve(sub_id).status == "canceled"
        [ended] = ended_entries(session_factory, f.cid)
        assert ended["action"] == "cancel" and ended["days"] == pytest.approx(21, abs=0.1) and "by" not in ended


async def test_a_second_dunning_of_the_same_invoice_mails_charges_and_keeps_both_records(
    ts_env: WorkflowEnvironment, client: Client, stripe_settings: Settings, session_factory, synced,
    stripe_acts, stripe_client, tmp_path,
):
    """Left past due on day 21, the same invoice fails again: the second dunning (the same
    workflow id) sends its warning and charges its retry 1 in localstripe (its keys carry
    the run), and both runs' rows stay in dunning_runs / dunning_cases."""
    settings = stripe_settings.model_copy(update={
        "policy_file": policy_with(tmp_path, end_action='"leave_past_due"'),
    })
    async with build_worker(client, settings, session_factory):
        f = await failing_customer(client, settings, session_factory, stripe_acts, stripe_client)
        await eventually(lambda: exists(f.dunning))
        await ts_env.sleep(timedelta(days=21, hours=1))
        assert await f.dunning.result() == "left_past_due"
        first_retries = len(retries(session_factory, f.cid))
        charged = charges(stripe_client, f.stripe_customer)
        assert mails(session_factory, f.cid).count(WARNING) == 1

        await f.fail("stripe:evt_fail_again", attempt=6)  # the same invoice, later
        await eventually(lambda: mails(session_factory, f.cid).count(WARNING) == 2)
        await ts_env.sleep(timedelta(days=1, hours=1))  # the second run's retry 1
        await eventually(lambda: len(retries(session_factory, f.cid)) == first_retries + 1)
        assert retries(session_factory, f.cid)[-1] == ("retry_1", "declined")
        assert charges(stripe_client, f.stripe_customer) == charged + 1  # charged again, for real
        rows = run_rows(session_factory, f.dunning_id())
        assert [(r.state, r.ended) for r in rows] == [("left_past_due", True), ("warning", False)]
        with session_factory() as s:
            kept = list(s.scalars(select(DunningCase).where(DunningCase.invoice_id == f.invoice)
                                  .order_by(DunningCase.id)))
        assert [c.outcome for c in kept] == ["lost", "open"]


def end_failing_gauge(session_factory) -> float:
    from starter.api.metrics import DunningCollector

    [family] = [m for m in DunningCollector(session_factory).collect()
                if m.name == "lifecycle_dunning_end_action_failing"]
    return family.samples[0].value


async def test_a_failing_cancel_is_retried_and_shown_until_stripe_confirms_it(
    ts_env: WorkflowEnvironment, client: Client, stripe_settings: Settings, session_factory, synced,
    stripe_acts, stripe_client,
):
    """Day 21, Stripe unreachable: the cancel fails beyond its activity retries. The run is
    never "canceled" while the subscription is live in Stripe: it is "canceling", counted
    in /metrics, in the ops digest and the customer view; once Stripe is back the cancel is
    tried again and confirmed (localstripe: canceled), then the run ends canceled."""
    from lifecycle.billing.dunning import current_view
    from starter.ops.digest import digest

    down = stripe_settings.model_copy(update={"stripe_api_base": "http://127.0.0.1:9"})
    async with uncached_worker(client, stripe_settings, session_factory):
        f = await failing_customer(client, stripe_settings, session_factory, stripe_acts, stripe_client)
        await eventually(lambda: exists(f.dunning))
        await ts_env.sleep(timedelta(days=20))
        await eventually(lambda: SUSPENDED in mails(session_factory, f.cid))
        await quiet_on_its_timer(f.dunning)
    sub_id = f.sub.stripe_subscription_id
    async with uncached_worker(client, down, session_factory):
        await ts_env.sleep(timedelta(days=1, hours=1))  # day 21: the cancel fails

        def canceling() -> bool:
            row = run_row(session_factory, f.dunning_id())
            return row is not None and row.state == "canceling"

        await eventually(canceling, timeout=120)
        row = run_row(session_factory, f.dunning_id())
        assert row is not None and row.end_action_error and not row.ended and row.suspended
        assert stripe_client.v1.subscriptions.retrieve(sub_id).status != "canceled"  # Stripe keeps billing
        assert end_failing_gauge(session_factory) == 1
        with session_factory() as s:
            view = current_view(s, f.cid)
            lines = digest(s, since=row.started_at)
        assert view is not None and view["state"] == "canceling" and view["end_action_failing"]["action"] == "cancel"
        assert any("not confirmed by Stripe" in line and f.cid in line for line in lines)
        assert ENDED not in mails(session_factory, f.cid)
        assert await f.stage_is("past_due")
        await quiet_on_its_timer(f.dunning, its_step=False)  # the backoff's timer
    async with uncached_worker(client, stripe_settings, session_factory):  # Stripe is back
        await ts_env.sleep(timedelta(hours=1))
        assert await asyncio.wait_for(f.dunning.result(), timeout=60) == "canceled"
        assert stripe_client.v1.subscriptions.retrieve(sub_id).status == "canceled"
        row = run_row(session_factory, f.dunning_id())
        assert row is not None and row.state == "canceled" and row.end_action_error is None and row.ended
        assert end_failing_gauge(session_factory) == 0
        await eventually(lambda: f.stage_is("canceled"))
        assert ENDED in mails(session_factory, f.cid)


async def test_an_outage_on_day_7_keeps_retry_4_for_when_stripe_is_back(
    ts_env: WorkflowEnvironment, client: Client, stripe_settings: Settings, session_factory, synced,
    stripe_acts, stripe_client,
):
    """Stripe unreachable on day 7: retry 4's call fails beyond its activity retries. The
    retry is not used up: once Stripe is back it runs (a new default card: paid in
    localstripe) and the dunning ends recovered by retry 4."""
    down = stripe_settings.model_copy(update={"stripe_api_base": "http://127.0.0.1:9"})
    async with uncached_worker(client, stripe_settings, session_factory):
        f = await failing_customer(client, stripe_settings, session_factory, stripe_acts, stripe_client)
        await eventually(lambda: exists(f.dunning))
        await ts_env.sleep(timedelta(days=6))
        await eventually(lambda: [r for r, _ in retries(session_factory, f.cid)] == ["retry_1", "retry_2", "retry_3"])
        await quiet_on_its_timer(f.dunning)
    async with uncached_worker(client, down, session_factory):
        await ts_env.sleep(timedelta(days=1, hours=1))  # day 7: retry 4 reaches no Stripe
        await eventually(lambda: len(retries(session_factory, f.cid)) == 4, timeout=120)
        assert retries(session_factory, f.cid)[-1][0] == "retry_4"
        assert retries(session_factory, f.cid)[-1][1].startswith("error")
        await eventually(lambda: SUSPENDED in mails(session_factory, f.cid))
        await quiet_on_its_timer(f.dunning)
    add_card(stripe_client, f.stripe_customer, GOOD_CARD)  # the new default
    async with uncached_worker(client, stripe_settings, session_factory):  # Stripe is back
        await ts_env.sleep(timedelta(hours=4))
        assert await asyncio.wait_for(f.dunning.result(), timeout=60) == "recovered"
    assert retries(session_factory, f.cid)[-1] == ("retry_4", "paid")
    assert stripe_client.v1.invoices.retrieve(f.invoice).status == "paid"
    assert cases(session_factory, f.cid)[f.invoice].how == "retry_4"
