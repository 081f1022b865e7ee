"""Trial, onboarding and the customer entity on the time-skipping server, with the real
activities against a SQLite database and the outbox. A 14-day trial takes milliseconds."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from lifecycle.contracts.customer import CustomerEvent, CustomerState
from lifecycle.contracts.events import (
    Activation,
    CampaignFinished,
    StripeSubscription,
    UsageThreshold,
    customer_event,
)
from lifecycle.contracts.ids import campaign_workflow_id, customer_workflow_id, renewal_workflow_id
from lifecycle.contracts.search_attributes import LIFECYCLE_STAGE
from lifecycle.contracts.tiers import Tiers, tiers_from_catalog
from lifecycle.settings import Settings
from starter.signals.send import signal_customer, start_input
from tests.support.helpers import add_customer, customer_row, emails, eventually, timeline
from worker import build_worker
from workflows.customer import CustomerWorkflow


@pytest.fixture
async def worker(client: Client, settings: Settings, session_factory) -> AsyncIterator[None]:
    async with build_worker(client, settings, session_factory):
        yield


def new_id() -> str:
    return f"cus-{uuid.uuid4().hex[:10]}"


async def sign_up(client: Client, settings: Settings, session_factory, cid: str, **start_overrides) -> WorkflowHandle:
    add_customer(session_factory, cid)
    start = replace(start_input(settings, cid, "starter"), **start_overrides)
    await signal_customer(
        client, cid, CustomerEvent(f"signup:{cid}", "signup"), start=start, task_queue=settings.task_queue
    )
    return client.get_workflow_handle(customer_workflow_id(cid))


async def state_of(handle: WorkflowHandle) -> CustomerState:
    return await handle.query(CustomerWorkflow.state)


async def stage_is(handle: WorkflowHandle, stage: str) -> bool:
    return (await state_of(handle)).stage == stage


def subjects(session_factory, cid: str) -> list[str]:
    return [m.subject for m in emails(session_factory, cid)]


async def test_trial_converts_when_a_payment_method_is_on_file(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    cid = new_id()
    handle = await sign_up(client, settings, session_factory, cid)
    await eventually(lambda: stage_is(handle, "trialing"))
    await signal_customer(client, cid, CustomerEvent(f"pm:{cid}", "payment_method_added"))

    trial = await campaign(client, cid, "trial")
    await ts_env.sleep(timedelta(days=14, minutes=1))
    assert await trial.result() == "converted"
    await eventually(lambda: stage_is(handle, "active"))
    await eventually(lambda: customer_row(session_factory, cid).stage == "active")
    changes = [(e.from_stage, e.to_stage) for e in timeline(session_factory, cid) if e.kind == "stage_changed"]
    assert changes == [(None, "trialing"), ("trialing", "active")]
    desc = await handle.describe()
    assert desc.typed_search_attributes.get(LIFECYCLE_STAGE) == "active"


async def test_trial_expires_without_a_payment_method(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    cid = new_id()
    handle = await sign_up(client, settings, session_factory, cid)
    trial = await campaign(client, cid, "trial")
    await ts_env.sleep(timedelta(days=14, minutes=1))
    assert await trial.result() == "expired"
    await eventually(lambda: stage_is(handle, "expired"))
    assert customer_row(session_factory, cid).stage == "expired"


async def campaign(client: Client, cid: str, name: str) -> WorkflowHandle:
    """The campaign child's handle, once the entity has started it."""
    handle = client.get_workflow_handle(campaign_workflow_id(cid, name))

    async def exists() -> bool:
        try:
            await handle.describe()
            return True
        except RPCError:
            return False

    await eventually(exists)
    return handle


async def test_reminders_go_out_three_days_and_one_day_before_the_end(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    cid = new_id()
    handle = await sign_up(client, settings, session_factory, cid)
    await eventually(lambda: "Welcome aboard, Ada" in subjects(session_factory, cid))

    await ts_env.sleep(timedelta(days=10, hours=23))
    reminders = lambda: [s for s in subjects(session_factory, cid) if s.startswith("Your trial ends")]  # noqa: E731
    assert reminders() == []

    await ts_env.sleep(timedelta(hours=2))  # day 11 + 1h: three days before the end
    await eventually(lambda: reminders() == ["Your trial ends in 3 days"])

    await ts_env.sleep(timedelta(days=1, hours=12))  # day 12.5: nothing new
    assert reminders() == ["Your trial ends in 3 days"]

    await ts_env.sleep(timedelta(hours=12))  # day 13 + 1h: one day before the end
    await eventually(lambda: reminders() == ["Your trial ends in 3 days", "Your trial ends in 1 day"])
    assert (await state_of(handle)).stage == "trialing"


async def test_payment_method_added_mid_trial_is_heard_at_once(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    cid = new_id()
    handle = await sign_up(client, settings, session_factory, cid)
    trial = await campaign(client, cid, "trial")
    await ts_env.sleep(timedelta(days=5))
    assert await trial.query("payment_method_on_file") is False

    await signal_customer(client, cid, CustomerEvent(f"pm:{cid}", "payment_method_added"))
    # heard by the entity and forwarded to the running trial, without waiting for the trial's end
    await eventually(lambda: _pm_on_file(handle))
    await eventually(lambda: trial.query("payment_method_on_file"))

    await ts_env.sleep(timedelta(days=6, hours=1))  # the 3-day reminder knows the card is on file
    msgs = await eventually(lambda: [m for m in emails(session_factory, cid) if m.template == "trial_reminder"])
    assert "your card is on file" in msgs[0].text
    await ts_env.sleep(timedelta(days=3))
    assert await trial.result() == "converted"


async def _pm_on_file(handle: WorkflowHandle) -> bool:
    return (await state_of(handle)).payment_method_on_file


async def test_onboarding_skips_a_step_the_customer_already_did(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    cid = new_id()
    await sign_up(client, settings, session_factory, cid)
    onboarding = await campaign(client, cid, "onboarding")
    await eventually(lambda: "Welcome aboard, Ada" in subjects(session_factory, cid))
    await signal_customer(
        client, cid, CustomerEvent(f"act:{cid}", "activation", {"fact": "created_first_project"})
    )
    await eventually(lambda: _facts(client, cid))

    await ts_env.sleep(timedelta(days=7, hours=1))
    assert (await onboarding.result()).startswith("completed: 3 sent, 1 skipped")
    sent = [m.step for m in emails(session_factory, cid) if m.campaign == "onboarding"]
    assert sent == ["welcome", "tip_invite_team", "tip_api"]
    skipped = [e for e in timeline(session_factory, cid) if e.kind == "email_skipped"]
    assert len(skipped) == 1
    assert skipped[0].detail["step"] == "tip_first_project"
    assert "created_first_project" in skipped[0].detail["reason"]


async def _facts(client: Client, cid: str) -> list[str]:
    return (await state_of(client.get_workflow_handle(customer_workflow_id(cid)))).activation_facts


async def test_signup_twice_gives_one_workflow_and_one_welcome(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    cid = new_id()
    handle = await sign_up(client, settings, session_factory, cid)
    first_run = (await handle.describe()).run_id
    await eventually(lambda: "Welcome aboard, Ada" in subjects(session_factory, cid))

    await signal_customer(
        client,
        cid,
        CustomerEvent(f"signup:{cid}", "signup"),
        start=start_input(settings, cid, "starter"),
        task_queue=settings.task_queue,
    )
    assert (await handle.describe()).run_id == first_run
    await ts_env.sleep(timedelta(hours=1))
    assert subjects(session_factory, cid).count("Welcome aboard, Ada") == 1
    stage_changes = [e for e in timeline(session_factory, cid) if e.kind == "stage_changed"]
    assert len(stage_changes) == 1


async def test_continue_as_new_keeps_state_and_forgets_no_event(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    cid = new_id()
    handle = await sign_up(client, settings, session_factory, cid, max_events_per_run=3)
    first_run = (await handle.describe()).run_id
    await signal_customer(client, cid, CustomerEvent(f"pm:{cid}", "payment_method_added"))
    facts = [f"fact_{i}" for i in range(6)]
    for fact in facts:
        await signal_customer(client, cid, CustomerEvent(f"act:{fact}", "activation", {"fact": fact}))
    # a duplicate of an event handled in an earlier run is still recognised
    await signal_customer(client, cid, CustomerEvent("act:fact_0", "activation", {"fact": "again"}))

    state = await eventually(lambda: _state_with_facts(handle, len(facts)))
    assert state.activation_facts == facts
    assert state.payment_method_on_file is True
    assert state.stage == "trialing"
    assert state.runs >= 3
    assert (await handle.describe()).run_id != first_run
    assert "again" not in state.activation_facts
    # campaigns started by the first run still hear the entity's later runs
    await signal_customer(
        client, cid, CustomerEvent(f"act:{cid}:project", "activation", {"fact": "created_first_project"})
    )
    await eventually(lambda: _state_with_facts(handle, len(facts) + 1))
    onboarding = await campaign(client, cid, "onboarding")
    await eventually(lambda: _onboarding_knows(onboarding, "created_first_project"))
    # (A campaign finishing after its parent run continued-as-new stalls the Java
    # time-skipping server's clock, so this test does not advance time; tests/test_e2e.py
    # covers a campaign finishing after continue-as-new on the dev server.)


async def _onboarding_knows(onboarding: WorkflowHandle, fact: str) -> bool:
    return fact in await onboarding.query("activation_facts", result_type=list[str])


async def _state_with_facts(handle: WorkflowHandle, n: int) -> CustomerState | None:
    try:
        state = await handle.query(CustomerWorkflow.state, rpc_timeout=timedelta(seconds=2))
    except RPCError:  # a query that lands on a run as it continues-as-new is not answered
        return None
    return state if len(state.activation_facts) >= n else None


async def test_unknown_event_kinds_are_ignored_not_fatal(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    cid = new_id()
    handle = await sign_up(client, settings, session_factory, cid)
    await signal_customer(client, cid, CustomerEvent("weird-1", "no_such_kind", {"x": 1}))
    await signal_customer(client, cid, CustomerEvent("act-1", "activation", {"fact": "used_api"}))
    state = await eventually(lambda: _state_with_facts(handle, 1))
    assert state.activation_facts == ["used_api"]


async def test_unsubscribe_is_heard_by_the_entity(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    cid = new_id()
    handle = await sign_up(client, settings, session_factory, cid)
    assert (await state_of(handle)).marketing_opt_out is False
    await signal_customer(client, cid, CustomerEvent(f"unsub:{cid}", "unsubscribed"))

    async def opted_out() -> bool:
        return (await state_of(handle)).marketing_opt_out

    await eventually(opted_out)


async def test_a_broken_template_holds_the_step_until_a_fixed_version_is_published(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    """Nothing half-sent and nothing lost: the step retries until marketers publish a fix."""
    from lifecycle.email.templates.versions import publish
    from lifecycle.settings import PROJECT_ROOT

    good = (PROJECT_ROOT / "templates" / "email" / "welcome.j2").read_text()
    broken = good.replace("{{ customer.first_name }}", "{{ customer.nickname }}")
    with session_factory() as s:
        publish(s, "welcome", broken)
        s.commit()

    cid = new_id()
    await sign_up(client, settings, session_factory, cid)
    onboarding = await campaign(client, cid, "onboarding")

    async def failing_attempts() -> int:
        desc = await onboarding.describe()
        pending = desc.raw_description.pending_activities
        return pending[0].attempt if pending and "nickname" in pending[0].last_failure.message else 0

    assert await eventually(lambda: failing_attempts(), timeout=20) >= 1
    assert emails(session_factory, cid) == []  # nothing recorded as sent, nothing half-sent

    with session_factory() as s:
        publish(s, "welcome", good)  # the fix: version 2
        s.commit()
    await ts_env.sleep(timedelta(minutes=30))  # past the retry's backoff
    [welcome] = await eventually(lambda: [m for m in emails(session_factory, cid) if m.step == "welcome"])
    assert welcome.status == "sent" and welcome.subject == "Welcome aboard, Ada"
    assert welcome.template_version.startswith("v2")


# --- workflows that never stall ---------------------------------------------------------------


async def active_customer(client: Client, settings: Settings, session_factory, plan: str = "starter",
                          **start_overrides) -> tuple[str, WorkflowHandle]:
    """A customer whose entity is already active (no trial, no onboarding)."""
    cid = new_id()
    add_customer(session_factory, cid, plan=plan)
    start = replace(start_input(settings, cid, plan), **start_overrides)
    start = replace(start, state=CustomerState(customer_id=cid, plan=plan, stage="active"))
    await signal_customer(client, cid, CustomerEvent(f"signup:{cid}", "signup"), start=start,
                          task_queue=settings.task_queue)
    return cid, client.get_workflow_handle(customer_workflow_id(cid))


def subscription_event(cid: str, n: int, **fields: object) -> CustomerEvent:
    return customer_event(f"t:{cid}:{n}", StripeSubscription(**{  # type: ignore[arg-type]
        "stripe_subscription_id": f"sub_{cid}", "stripe_customer_id": f"cus_{cid}", "status": "active",
        "plan": "starter", "interval": "year", "event_type": "customer.subscription.updated", **fields,
    }))


async def test_a_campaign_run_again_under_the_same_id_reports_its_end_each_time(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    """One date's renewal reminders, dropped by a cancellation and brought back when it is
    taken back, three times over: every run's end is heard, so the reminders come back
    each time, and once dropped for good the entity lists nothing and waits on nothing."""
    cid, handle = await active_customer(client, settings, session_factory)
    period_end = await ts_env.get_current_time() + timedelta(days=60)
    renewal_id = renewal_workflow_id(cid, period_end)
    key = f"renewal/{period_end:%Y%m%d}"
    runs: list[str] = []

    async def a_new_run() -> str | None:
        try:
            run_id = (await client.get_workflow_handle(renewal_id).describe()).run_id
        except RPCError:
            return None
        return run_id if run_id not in runs else None

    n = 0
    for _ in range(3):
        n += 1
        await signal_customer(client, cid, subscription_event(cid, n, current_period_end=period_end))
        runs.append(await eventually(a_new_run))
        await eventually(lambda: _lists(handle, key, renewal_id))
        n += 1
        await signal_customer(client, cid, subscription_event(cid, n, current_period_end=period_end,
                                                              cancel_at_period_end=True))
        assert await client.get_workflow_handle(renewal_id, run_id=runs[-1]).result() == "dropped"
        await eventually(lambda: _lists(handle, key, None))
    assert len(set(runs)) == 3
    state = await state_of(handle)
    assert not [w for w in state.waits.values() if w.workflow_id == renewal_id]


async def _lists(handle: WorkflowHandle, key: str, workflow_id: str | None) -> bool:
    """The entity lists ``workflow_id`` under ``key`` (None: lists nothing there)."""
    return (await state_of(handle)).campaigns.get(key) == workflow_id


def tiers_without(code: str) -> Tiers:
    """The catalog's tiers less ``code``: an entity's snapshot taken before that tier existed."""
    now = tiers_from_catalog()
    return Tiers(tiers=[t for t in now.tiers if t.code != code], metric_units=now.metric_units)


def data_errors(session_factory, cid: str) -> list[tuple[str | None, str, object]]:
    return [(e.campaign, e.detail["unknown"], e.detail["value"])
            for e in timeline(session_factory, cid) if e.kind == "workflow_data_error"]


async def test_a_tier_the_entity_does_not_know_is_recorded_and_the_entity_keeps_working(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    """Professional is missing from the entity's snapshot: the usage nudge and the expansion
    offer that would name it are recorded as data errors and skipped, and the entity still
    answers and starts the next campaign (the renewal reminders of an annual plan)."""
    cid, handle = await active_customer(client, settings, session_factory, "professional",
                                        tiers=tiers_without("professional"))
    now = await ts_env.get_current_time()
    p0, p1 = (now - timedelta(days=30), now), (now, now + timedelta(days=30))
    for n, (metric, used, limit, (start, end)) in enumerate(
        [("ai_requests", 8000, 10000, p0), ("storage_gb", 41, 50, p1)], start=1
    ):
        await signal_customer(client, cid, customer_event(f"u:{cid}:{n}", UsageThreshold(
            metric=metric, threshold=80, used=used, limit=limit, limit_kind="hard", period_start=start,
            period_end=end)))
    errors = await eventually(lambda: len(data_errors(session_factory, cid)) == 3 and data_errors(session_factory, cid))
    assert sorted(errors, key=str) == sorted([("usage", "plan", "professional")] * 2
                                             + [("expansion", "plan", "professional")], key=str)
    assert [m for m in emails(session_factory, cid) if m.campaign in ("usage", "expansion")] == []

    period_end = now + timedelta(days=200)
    await signal_customer(client, cid, subscription_event(cid, 1, plan="professional",
                                                          current_period_end=period_end))
    renewal_id = renewal_workflow_id(cid, period_end)
    await eventually(lambda: _lists(handle, f"renewal/{period_end:%Y%m%d}", renewal_id))
    assert (await state_of(handle)).billing.plan == "professional"


async def test_a_renewal_on_a_tier_the_snapshot_lacks_skips_its_reminder_and_records_why(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    cid, handle = await active_customer(client, settings, session_factory, "professional",
                                        tiers=tiers_without("professional"))
    period_end = await ts_env.get_current_time() + timedelta(days=60)
    await signal_customer(client, cid, subscription_event(cid, 1, plan="professional",
                                                          current_period_end=period_end))
    renewal_id = renewal_workflow_id(cid, period_end)
    await eventually(lambda: _lists(handle, f"renewal/{period_end:%Y%m%d}", renewal_id))
    await ts_env.sleep(timedelta(days=54))  # past both reminders' times
    assert await client.get_workflow_handle(renewal_id).result() == "reminded"
    skipped = [e.detail for e in timeline(session_factory, cid) if e.kind == "email_skipped"]
    assert [d["step"] for d in skipped] == ["renewal_30_days", "renewal_7_days"]
    assert all("unknown plan 'professional'" in d["reason"] for d in skipped)
    assert data_errors(session_factory, cid) == [("renewal", "plan", "professional")] * 2
    assert [m for m in emails(session_factory, cid) if m.campaign == "renewal"] == []
    await eventually(lambda: _lists(handle, f"renewal/{period_end:%Y%m%d}", None))  # its end was heard


async def test_a_quarterly_price_reaches_the_entity_with_its_interval_count(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    """A Stripe price billed every three months, mapped to Professional: the mirror hands the
    entity month x3 (not month), the entity keeps it and tells the product."""
    import time as _time

    from lifecycle.billing.event_shapes import parse_event
    from lifecycle.billing.handlers import apply_event
    from lifecycle.db import session_scope
    from lifecycle.models import Customer
    from tests.support.stripe import make_event
    from tests.test_stripe_price_tiers import price, subscription

    cid, handle = await active_customer(client, settings, session_factory)
    stripe_id = f"cus_{uuid.uuid4().hex[:14]}"
    with session_scope(session_factory) as s:
        s.get(Customer, cid).stripe_customer_id = stripe_id
    quarterly = price(14700, metadata={"tier": "professional"})
    quarterly["recurring"]["interval_count"] = 3
    with session_scope(session_factory) as s:
        _, handover = apply_event(s, parse_event(make_event(
            "customer.subscription.created", subscription(stripe_id, quarterly), created=int(_time.time()))))
    assert handover is not None and handover.event.data["interval_count"] == 3
    await signal_customer(client, cid, handover.event)

    async def billed_quarterly() -> bool:
        b = (await state_of(handle)).billing
        return (b.plan, b.interval, b.interval_count) == ("professional", "month", 3)

    await eventually(billed_quarterly)
    assert (await state_of(handle)).plan == "professional"


async def test_a_weekly_price_is_reckoned_by_the_year_not_a_failed_workflow_task(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    """Professional billed weekly, moving to Starter monthly: reckoned by the year ($588 at
    Professional's rate against $228) it is a downgrade, scheduled for the period end; the
    entity answers the update and goes on."""
    import asyncio

    from lifecycle.contracts.billing import OUTCOME_CHANGE_SCHEDULED, SubscriptionRequest

    cid, handle = await active_customer(client, settings, session_factory, "professional")
    period_end = await ts_env.get_current_time() + timedelta(days=5)
    await signal_customer(client, cid, subscription_event(cid, 1, plan="professional", interval="week",
                                                          amount_cents=1200, current_period_end=period_end))

    async def weekly() -> bool:
        return (await state_of(handle)).billing.interval == "week"

    await eventually(weekly)
    result = await asyncio.wait_for(handle.execute_update(
        CustomerWorkflow.change_subscription,
        SubscriptionRequest(action="change", request_id="r-weekly", plan="starter", interval="month"),
    ), timeout=20)
    assert (result.outcome, result.pending_plan, result.pending_interval) == (
        OUTCOME_CHANGE_SCHEDULED, "starter", "month")
    state = await state_of(handle)
    assert (state.plan, state.billing.interval, state.billing.pending_plan) == ("professional", "week", "starter")


async def test_an_older_runs_late_end_never_unlists_the_run_that_replaced_it(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    """The end of an earlier run of the same workflow id, heard after the new run started
    (a dunning for the same invoice begun again before the first one's end was handled):
    the new run stays listed and still hears the entity (a cancellation drops it)."""
    cid, handle = await active_customer(client, settings, session_factory)
    period_end = await ts_env.get_current_time() + timedelta(days=60)
    renewal_id, key = renewal_workflow_id(cid, period_end), f"renewal/{period_end:%Y%m%d}"
    await signal_customer(client, cid, subscription_event(cid, 1, current_period_end=period_end))
    run_id = (await eventually(lambda: _reported(handle, renewal_id))).run_id

    await signal_customer(client, cid, customer_event(
        f"{renewal_id}:finished:an-earlier-run", CampaignFinished(campaign=key, outcome="dropped",
                                                                 run_id="an-earlier-run")))
    await signal_customer(client, cid, customer_event(f"a:{cid}", Activation(fact="created_project")))
    await eventually(lambda: _seen(handle, f"a:{cid}"))
    state = await state_of(handle)
    assert state.campaigns.get(key) == renewal_id and state.retention.renewal_workflow == renewal_id
    await signal_customer(client, cid, subscription_event(cid, 2, current_period_end=period_end,
                                                          cancel_at_period_end=True))
    assert await client.get_workflow_handle(renewal_id, run_id=run_id).result() == "dropped"
    await eventually(lambda: _lists(handle, key, None))


async def _reported(handle: WorkflowHandle, workflow_id: str):  # noqa: ANN202
    return next((w for w in (await state_of(handle)).waits.values() if w.workflow_id == workflow_id), None)


async def _seen(handle: WorkflowHandle, event_id: str) -> bool:
    return event_id in (await state_of(handle)).seen_event_ids
