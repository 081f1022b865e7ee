"""Ops controls on the time-skipping server, with the real worker, activities, database
and outbox: pause / resume, skip-step, cancel-campaign, resend, the refusals, the audit
trail, and the why-waiting answer for each kind of wait."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from lifecycle.contracts.ids import campaign_workflow_id, customer_workflow_id
from lifecycle.contracts.ops import (
    WAIT_ACTIVITY,
    WAIT_FREQUENCY_CAP,
    WAIT_PAUSED,
    WAIT_QUIET_HOURS,
    WAIT_TIMER,
    CampaignWaiting,
)
from lifecycle.contracts.search_attributes import CAMPAIGN, NEXT_STEP_AT, WAITING_FOR, WAITS
from lifecycle.models import AuditEntry, EmailMessage
from lifecycle.settings import Settings
from starter.ops.actions import ActionRefused, ActionRequest, take_action
from starter.ops.why import why_waiting
from tests.support.helpers import emails, eventually, timeline
from tests.test_workflows import campaign, new_id, sign_up, state_of
from worker import build_worker


@pytest.fixture
async def worker(client: Client, settings: Settings, session_factory) -> AsyncIterator[None]:
    async with build_worker(client, settings, session_factory):
        yield


def act(action: str, reason: str = "customer asked support", **kw) -> ActionRequest:
    return ActionRequest(action=action, reason=reason, actor=kw.pop("actor", "ada@support"), **kw)


def steps_sent(sessions, cid: str, step: str) -> list[EmailMessage]:
    return [m for m in emails(sessions, cid) if m.step == step]


def audit_rows(sessions, cid: str) -> list[AuditEntry]:
    with sessions() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.customer_id == cid).order_by(AuditEntry.id)))


async def onboarding_waits(client: Client, cid: str) -> CampaignWaiting:
    why = await why_waiting(client, cid)
    found = [c for c in why.campaigns if c.campaign == "onboarding"]
    assert found, f"onboarding not running: {why}"
    return found[0]


async def test_pause_across_a_steps_time_then_resume_sends_it_once(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    cid = new_id()
    await sign_up(client, settings, session_factory, cid)
    await eventually(lambda: steps_sent(session_factory, cid, "welcome"))
    await eventually(lambda: _step_is(client, cid, "tip_first_project"))

    paused = await take_action(client, session_factory, cid, act("pause"))
    assert paused.paused and "onboarding" in paused.campaigns
    await ts_env.sleep(timedelta(days=2))  # tip_first_project (day 1) is due while paused
    waits = await eventually(lambda: _waits(client, cid, WAIT_PAUSED))
    assert waits.step == "tip_first_project" and waits.paused
    assert steps_sent(session_factory, cid, "tip_first_project") == []

    await take_action(client, session_factory, cid, act("resume", "back on"))
    await eventually(lambda: steps_sent(session_factory, cid, "tip_first_project"))
    await eventually(lambda: _step_is(client, cid, "tip_invite_team"))  # day 3: on its own time again
    await ts_env.sleep(timedelta(days=2))
    await eventually(lambda: steps_sent(session_factory, cid, "tip_invite_team"))
    assert len(steps_sent(session_factory, cid, "tip_first_project")) == 1  # once

    rows = audit_rows(session_factory, cid)
    assert [(r.action, r.actor, r.reason) for r in rows] == [
        ("pause", "ada@support", "customer asked support"), ("resume", "ada@support", "back on")]
    assert [e.detail["action"] for e in timeline(session_factory, cid) if e.kind == "ops_action"] == [
        "pause", "resume"]


async def test_pause_holds_marketing_only_transactional_mail_goes_on(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    """The trial's reminders are transactional: they go out while marketing is paused."""
    cid = new_id()
    await sign_up(client, settings, session_factory, cid)
    await eventually(lambda: steps_sent(session_factory, cid, "welcome"))
    await take_action(client, session_factory, cid, act("pause"))
    await ts_env.sleep(timedelta(days=11, hours=1))
    await eventually(lambda: steps_sent(session_factory, cid, "reminder_3_days"))
    assert steps_sent(session_factory, cid, "tip_first_project") == []
    assert (await state_of(client.get_workflow_handle(f"customer-{cid}"))).paused


async def test_skip_step_skips_the_waiting_step_and_records_it(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    cid = new_id()
    await sign_up(client, settings, session_factory, cid)
    await eventually(lambda: _step_is(client, cid, "tip_first_project"))
    result = await take_action(client, session_factory, cid, act("skip-step", campaign="onboarding"))
    assert "tip_first_project" in result.done
    waits = await eventually(lambda: _step_is(client, cid, "tip_invite_team"))
    assert waits.skipped_steps == ["tip_first_project"]
    await ts_env.sleep(timedelta(days=2))
    assert steps_sent(session_factory, cid, "tip_first_project") == []
    skipped = [e for e in timeline(session_factory, cid) if e.kind == "email_skipped"]
    assert [(e.detail["step"], e.detail["reason"].split(" (")[0]) for e in skipped] == [
        ("tip_first_project", "skipped by ops")]
    [row] = audit_rows(session_factory, cid)
    assert (row.action, row.detail["campaign"], row.detail["step"]) == ("skip-step", "onboarding", "tip_first_project")


async def test_cancel_campaign_stops_it(ts_env: WorkflowEnvironment, client, settings, session_factory, worker):
    cid = new_id()
    handle = await sign_up(client, settings, session_factory, cid)
    onboarding = await campaign(client, cid, "onboarding")
    await eventually(lambda: _step_is(client, cid, "tip_first_project"))
    await take_action(client, session_factory, cid, act("cancel-campaign", campaign="onboarding"))
    await eventually(lambda: _status(onboarding, WorkflowExecutionStatus.CANCELED))
    state = await state_of(handle)
    assert "onboarding" not in state.campaigns and state.outcomes["onboarding"] == "canceled by ops"
    await ts_env.sleep(timedelta(days=8))
    assert [m.step for m in emails(session_factory, cid)] == ["welcome"]
    assert [r.action for r in audit_rows(session_factory, cid)] == ["cancel-campaign"]


async def test_refusals_change_nothing_and_say_why(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    cid = new_id()
    await sign_up(client, settings, session_factory, cid)
    await eventually(lambda: _step_is(client, cid, "tip_first_project"))

    async def refused(req: ActionRequest, customer: str = cid) -> tuple[int, str]:
        with pytest.raises(ActionRefused) as info:
            await take_action(client, session_factory, customer, req)
        return info.value.status, info.value.message

    assert await refused(act("pause"), customer="nobody") == (404, "unknown customer 'nobody'")
    assert await refused(act("cancel-campaign", campaign="winback")) == (
        409, "unknown campaign 'winback'; running: onboarding, trial")
    assert (await refused(act("skip-step", campaign="winback")))[0] == 409
    assert await refused(act("cancel-campaign", campaign="trial")) == (
        409, "trial carries billing and cannot be cancelled; skip its steps instead")
    assert await refused(act("skip-step", campaign="onboarding", step="tip_api")) == (
        409, "onboarding is waiting on 'tip_first_project', not 'tip_api'")
    assert await refused(act("extend-grace", days=3)) == (409, "no dunning is running")
    assert await refused(act("retry-now")) == (409, "no dunning is running")
    assert (await refused(act("extend-grace", days=-2)))[0] == 422
    assert (await refused(act("pause", reason="  ")))[0] == 422
    assert await refused(act("resume")) == (409, "nothing is paused")
    assert (await refused(act("resend", step="welcome")))[0] == 409  # sent fine: nothing to resend
    assert (await refused(act("explode")))[0] == 404
    assert audit_rows(session_factory, cid) == []
    assert (await onboarding_waits(client, cid)).step == "tip_first_project"  # nothing moved


async def test_resend_sends_an_uncertain_email_again_under_a_new_key(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    cid = new_id()
    await sign_up(client, settings, session_factory, cid)
    # once the send is over (a message still "sending" would be finished over our edit)
    [welcome] = await eventually(lambda: [m for m in steps_sent(session_factory, cid, "welcome") if m.status == "sent"])
    with session_factory() as s:  # the provider's answer was lost: maybe sent
        s.get(EmailMessage, welcome.id).status = "uncertain"
        s.commit()
    result = await take_action(client, session_factory, cid, act("resend", step="welcome"))
    assert result.done.endswith("resent: sent")
    both = steps_sent(session_factory, cid, "welcome")
    assert [m.status for m in both] == ["uncertain", "sent"]
    assert both[1].idempotency_key != both[0].idempotency_key and both[1].subject == both[0].subject
    assert both[1].headers["X-Lifecycle-Resend-Of"] == str(welcome.id)
    assert [r.detail["message_id"] for r in audit_rows(session_factory, cid)] == [welcome.id]


# --- why-waiting: each kind of wait ------------------------------------------------------


async def test_why_waiting_names_the_timer_and_what_comes_next(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    cid = new_id()
    await sign_up(client, settings, session_factory, cid)
    waits = await eventually(lambda: _step_is(client, cid, "tip_first_project"))
    assert waits.waiting.kind == WAIT_TIMER and waits.waiting.until is not None
    assert waits.next_step == "tip_invite_team" and waits.done_steps == ["welcome"]
    why = await why_waiting(client, cid)
    trial = next(c for c in why.campaigns if c.campaign == "trial")
    assert (trial.step, trial.waiting.kind, trial.marketing) == ("reminder_3_days", WAIT_TIMER, False)
    desc = await client.get_workflow_handle(campaign_workflow_id(cid, "onboarding")).describe()
    attrs = desc.typed_search_attributes
    assert attrs.get(CAMPAIGN) == "onboarding" and attrs.get(WAITING_FOR) == WAIT_TIMER
    assert attrs.get(NEXT_STEP_AT) == waits.waiting.until


async def test_the_entity_carries_what_its_campaigns_wait_for_and_their_earliest_next_step(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    cid = new_id()
    await sign_up(client, settings, session_factory, cid)
    tip = await eventually(lambda: _step_is(client, cid, "tip_first_project"))
    trial = next(c for c in (await why_waiting(client, cid)).campaigns if c.campaign == "trial")
    first = min(tip.waiting.until, trial.waiting.until)  # the day-1 tip, before the trial's day-11 reminder
    waits, next_at = await eventually(lambda: _entity_has(client, cid, "onboarding:timer", "trial:timer", at=first))
    assert set(waits) == {"timer", "onboarding:timer", "trial:timer"} and next_at == first

    await take_action(client, session_factory, cid, act("pause"))
    await ts_env.sleep(timedelta(days=2))  # the tip falls due while paused: onboarding waits for resume
    waits, next_at = await eventually(lambda: _entity_has(client, cid, "onboarding:paused"))
    assert set(waits) == {"paused", "timer", "onboarding:paused", "trial:timer"}
    assert next_at == tip.waiting.until  # still the earliest: it was due then and waits for resume

    await take_action(client, session_factory, cid, act("cancel-campaign", campaign="onboarding"))
    waits, next_at = await eventually(lambda: _entity_has(client, cid, "trial:timer", only=True))
    assert next_at == trial.waiting.until  # onboarding's time no longer counts
    assert waits == ["timer", "trial:timer"]


async def test_the_entity_ignores_a_wait_report_that_is_not_from_one_of_its_campaigns(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    from lifecycle.contracts.ops import CAMPAIGN_WAIT_SIGNAL, CampaignWait

    cid, other = new_id(), new_id()
    await sign_up(client, settings, session_factory, cid)
    tip = await eventually(lambda: _step_is(client, cid, "tip_first_project"))

    # the entity has heard onboarding's report for the tip (no other comes before day 1)
    await eventually(lambda: _entity_has(client, cid, "onboarding:timer", at=tip.waiting.until))
    entity = client.get_workflow_handle(customer_workflow_id(cid))
    # another customer's id, then a prefix that is not a child's: both ignored
    for wf in (f"customer-{other}/onboarding", f"customer-{cid}x/onboarding"):
        await entity.signal(CAMPAIGN_WAIT_SIGNAL, CampaignWait("onboarding", wf, WAIT_PAUSED, None))
    # a report from its own onboarding id (sent last): once it shows, the two before were handled
    own = CampaignWait("onboarding", campaign_workflow_id(cid, "onboarding"), WAIT_FREQUENCY_CAP, None)
    await entity.signal(CAMPAIGN_WAIT_SIGNAL, own)
    waits, _ = await eventually(lambda: _entity_has(client, cid, "onboarding:frequency_cap"))
    assert "paused" not in waits and "onboarding:paused" not in waits
    assert len((await entity.query("state"))["waits"]) == 2  # its trial and its onboarding, nothing else


async def _entity_has(client: Client, cid: str, *wanted: str, only: bool = False, at: dt.datetime | None = None):
    """The entity's Waits and NextStepAt once they name ``wanted`` (``only``: nothing else;
    ``at``: and its NextStepAt is that; a campaign's earlier report may show first)."""
    attrs = (await client.get_workflow_handle(customer_workflow_id(cid)).describe()).typed_search_attributes
    waits, next_at = list(attrs.get(WAITS) or []), attrs.get(NEXT_STEP_AT)
    named = {w for w in waits if ":" in w}
    if not set(wanted) <= named or (only and named != set(wanted)) or (at is not None and next_at != at):
        return None
    return waits, next_at


async def test_why_waiting_names_quiet_hours(
    ts_env: WorkflowEnvironment, client, settings: Settings, session_factory
):
    # quiet hours from 00:00 to 23:59 UTC: the day-1 tip waits for 23:59
    quiet = settings.model_copy(update={"email_quiet_hours_start": dt.time(0), "email_quiet_hours_end": dt.time(23, 59)})
    async with build_worker(client, quiet, session_factory):
        cid = new_id()
        await sign_up(client, quiet, session_factory, cid)
        await ts_env.sleep(timedelta(days=1, minutes=1))
        waits = await eventually(lambda: _waits(client, cid, WAIT_QUIET_HOURS))
        assert waits.step == "tip_first_project" and "quiet hours" in waits.waiting.detail
        assert (waits.waiting.until.hour, waits.waiting.until.minute) == (23, 59)
        # skip-step ends a quiet-hours wait too: recorded, never sent
        await take_action(client, session_factory, cid, act("skip-step", campaign="onboarding",
                                                            step="tip_first_project"))
        await eventually(lambda: [e for e in timeline(session_factory, cid) if e.kind == "email_skipped"
                                  and e.detail.get("step") == "tip_first_project"
                                  and e.detail["reason"].startswith("skipped by ops")])
        assert steps_sent(session_factory, cid, "tip_first_project") == []


async def test_why_waiting_names_the_frequency_cap(
    ts_env: WorkflowEnvironment, client, settings: Settings, session_factory
):
    # one marketing email per 5 days: the day-3 tip waits for the cap
    capped = settings.model_copy(update={"email_frequency_cap": 1, "email_frequency_cap_hours": 120.0})
    async with build_worker(client, capped, session_factory):
        cid = new_id()
        await sign_up(client, capped, session_factory, cid)
        await ts_env.sleep(timedelta(days=3, minutes=1))
        waits = await eventually(lambda: _waits(client, cid, WAIT_FREQUENCY_CAP))
        assert waits.step == "tip_invite_team" and waits.waiting.until is not None


async def test_why_waiting_names_a_retrying_activity_with_its_error_and_attempt(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    from lifecycle.email.templates.versions import publish
    from lifecycle.settings import PROJECT_ROOT

    good = (PROJECT_ROOT / "templates" / "email" / "welcome.j2").read_text()
    with session_factory() as s:
        publish(s, "welcome", good.replace("{{ customer.first_name }}", "{{ customer.nickname }}"))
        s.commit()
    cid = new_id()
    await sign_up(client, settings, session_factory, cid)

    async def retrying() -> CampaignWaiting | None:
        try:
            waits = await onboarding_waits(client, cid)
        except AssertionError:  # not started yet
            return None
        w = waits.waiting
        return waits if w.kind == WAIT_ACTIVITY and w.attempt and w.last_error and "nickname" in w.last_error else None

    waits = await eventually(retrying, timeout=20)
    assert waits.step == "welcome" and waits.waiting.detail == "send_email" and waits.waiting.attempt >= 1


async def test_the_audit_log_is_append_only(db_url: str):
    from lifecycle.db import make_engine

    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO audit_log (action_id, customer_id, action, actor, reason, detail, occurred_at, "
                "recorded_at) VALUES (:a, 'c1', 'pause', 'ada', 'why', '{}', :t, :t)"
            ), {"a": uuid.uuid4().hex, "t": dt.datetime.now(dt.UTC)})
        for statement in ("UPDATE audit_log SET reason = 'rewritten'", "DELETE FROM audit_log"):
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                conn.execute(text(statement))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT reason FROM audit_log")).scalars().all() == ["why"]
    finally:
        engine.dispose()


# --- helpers -----------------------------------------------------------------------------


async def _step_is(client: Client, cid: str, step: str) -> CampaignWaiting | None:
    try:
        waits = await onboarding_waits(client, cid)
    except (AssertionError, RPCError, WorkflowQueryFailedError):  # not started yet
        return None
    return waits if waits.step == step and waits.waiting.kind == WAIT_TIMER else None


async def _waits(client: Client, cid: str, kind: str) -> CampaignWaiting | None:
    try:
        waits = await onboarding_waits(client, cid)
    except (AssertionError, RPCError, WorkflowQueryFailedError):
        return None
    return waits if waits.waiting.kind == kind else None


async def _status(handle, status: WorkflowExecutionStatus) -> bool:
    return (await handle.describe()).status == status


async def test_a_usage_nudge_crossing_while_paused_waits_for_resume_and_goes_out_once(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    from lifecycle.contracts.customer import CustomerEvent, CustomerState
    from lifecycle.contracts.ids import usage_workflow_id
    from lifecycle.contracts.stages import ACTIVE
    from lifecycle.usage import UsageService
    from starter.signals.send import signal_customer, start_input
    from starter.signals.usage import deliver
    from tests.support.helpers import add_customer

    cid = new_id()
    add_customer(session_factory, cid)
    start = start_input(settings, cid, "starter")
    start.state = CustomerState(customer_id=cid, plan="starter", stage=ACTIVE, stage_changed_at=dt.datetime.now(dt.UTC))
    await signal_customer(client, cid, CustomerEvent(f"signup:{cid}", "signup"), start=start,
                          task_queue=settings.task_queue)
    await take_action(client, session_factory, cid, act("pause"))

    svc = UsageService(session_factory)
    crossed = svc.ingest([{"customer_id": cid, "metric": "ai_requests", "quantity": 850, "idempotency_key": "u1"}])
    await deliver(client, svc, crossed.crossings)
    nudge = client.get_workflow_handle(usage_workflow_id(cid, "ai_requests", crossed.crossings[0].period_start, 80))

    async def held() -> bool:
        try:
            answer: CampaignWaiting = await nudge.query("waiting", result_type=CampaignWaiting)
        except (RPCError, WorkflowQueryFailedError):
            return False
        return answer.waiting.kind == WAIT_PAUSED

    await eventually(held)
    assert [m for m in emails(session_factory, cid) if m.campaign == "usage"] == []
    resumed = await take_action(client, session_factory, cid, act("resume"))
    assert any(c.startswith("usage/ai_requests/") for c in resumed.campaigns)
    assert await nudge.result() == "sent"
    assert len([m for m in emails(session_factory, cid) if m.campaign == "usage"]) == 1


