"""Caps and quiet hours at workflow level: the time-skipping server (conftest's ts_env), the
real email activity, SQLite and PostgreSQL, and the outbox. The workflow waits on durable timers; nothing is dropped."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.email import EmailActivities
from activities.store import StoreActivities
from lifecycle.contracts.policy import EmailStep
from lifecycle.db import session_scope
from lifecycle.email.providers import OutboxProvider
from lifecycle.models import EmailMessage, LifecycleEvent
from lifecycle.settings import Settings
from tests.support.email import EmailDB, make_settings
from tests.support.email_workflows import EmailStepsWorkflow, StepsInput


async def run_steps(
    ts: WorkflowEnvironment, db: EmailDB, settings: Settings, customer: str, steps: list[EmailStep],
    context: dict | None = None,
) -> list:
    queue = f"email-{uuid.uuid4().hex[:8]}"
    email = EmailActivities(db.factory, settings, OutboxProvider())
    store = StoreActivities(db.factory)
    async with Worker(ts.client, task_queue=queue, workflows=[EmailStepsWorkflow],
                      activities=[email.send_email, store.record_event]):
        return await ts.client.execute_workflow(
            EmailStepsWorkflow.run, StepsInput(customer, "onboarding", steps, context or {}),
            id=f"customer-{customer}/onboarding-{uuid.uuid4().hex[:6]}", task_queue=queue,
        )


def sent_rows(db: EmailDB, customer: str) -> list[EmailMessage]:
    with session_scope(db.factory) as s:
        return list(s.scalars(select(EmailMessage).where(EmailMessage.customer_id == customer)
                              .order_by(EmailMessage.id)))


def events(db: EmailDB, customer: str) -> list[LifecycleEvent]:
    with session_scope(db.factory) as s:
        return list(s.scalars(select(LifecycleEvent).where(LifecycleEvent.customer_id == customer)
                              .order_by(LifecycleEvent.id)))


NO_QUIET = {"email_quiet_hours_start": dt.time(0), "email_quiet_hours_end": dt.time(0)}


async def test_the_cap_delays_the_second_email_of_the_day(ts_env, email_db: EmailDB) -> None:
    email_db.add_customer("cus_cap")
    settings = make_settings(email_db.url, **NO_QUIET)
    steps = [EmailStep("welcome", "welcome"), EmailStep("tip_api", "tip_api"),
             EmailStep("receipt", "trial_reminder", category="transactional",
                       vars={"days_left": 1})]
    started = await ts_env.get_current_time()
    results = await run_steps(ts_env, email_db, settings, "cus_cap", steps,
                              {"days_left": 1, "has_payment_method": False})
    assert [r.status for r in results] == ["sent", "sent", "sent"]
    first, second, receipt = sent_rows(email_db, "cus_cap")
    assert first.created_at - started < dt.timedelta(minutes=5)  # the first went at once
    # the second waited for the cap (24 h after the first), on a durable timer: not dropped
    gap = second.created_at - first.created_at
    assert dt.timedelta(hours=24) <= gap < dt.timedelta(hours=24, minutes=1)
    # transactional mail is not capped: it went right after the second
    assert receipt.created_at - second.created_at < dt.timedelta(minutes=5)
    deferred = [e for e in events(email_db, "cus_cap") if e.kind == "email_deferred"]
    assert len(deferred) == 1 and deferred[0].detail["step"] == "tip_api"
    assert "frequency cap" in deferred[0].detail["reason"]


async def test_quiet_hours_delay_a_send_to_the_next_window_in_the_customers_zone(
    ts_env, email_db: EmailDB
) -> None:
    zone = ZoneInfo("Asia/Tokyo")
    email_db.add_customer("cus_tokyo", timezone="Asia/Tokyo")
    local_now = (await ts_env.get_current_time()).astimezone(zone)
    # quiet hours around "now" in Tokyo, whatever the time of day the suite runs
    start = (local_now - dt.timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (local_now + dt.timedelta(hours=3)).time().replace(second=0, microsecond=0)
    settings = make_settings(email_db.url, email_quiet_hours_start=start,
                             email_quiet_hours_end=end, email_frequency_cap=0)
    results = await run_steps(ts_env, email_db, settings, "cus_tokyo", [EmailStep("welcome", "welcome")])
    assert results[0].status == "sent"
    [row] = sent_rows(email_db, "cus_tokyo")
    sent_local = row.created_at.astimezone(zone)
    assert sent_local.time().replace(second=0, microsecond=0) == end
    assert dt.timedelta(hours=2) < row.created_at - local_now < dt.timedelta(hours=3, minutes=1)
    [deferred] = [e for e in events(email_db, "cus_tokyo") if e.kind == "email_deferred"]
    assert "in Asia/Tokyo" in deferred.detail["reason"]
    not_before = dt.datetime.fromisoformat(deferred.detail["not_before"])
    assert dt.timedelta(0) <= row.created_at - not_before < dt.timedelta(minutes=1)
