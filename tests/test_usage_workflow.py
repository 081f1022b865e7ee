"""Threshold crossings reach the customer's workflow and send the right email, once per
period: time-skipping server, the real worker activities, SQLite and the outbox."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest
from sqlalchemy import select
from temporalio.client import Client

from lifecycle.contracts.customer import CustomerEvent, CustomerState
from lifecycle.contracts.email import EMAIL_SKIPPED
from lifecycle.contracts.ids import customer_workflow_id, usage_workflow_id
from lifecycle.contracts.stages import ACTIVE, PAST_DUE
from lifecycle.models import EmailMessage, LifecycleEvent, UsageSignal
from lifecycle.settings import Settings
from lifecycle.temporal import connect
from lifecycle.usage import UsageService
from starter.signals.send import signal_customer, start_input
from starter.signals.usage import deliver, resend_pending
from tests.conftest import free_port
from tests.support.helpers import emails, eventually, timeline
from tests.support.usage import Db
from worker import build_worker

UTC = dt.UTC


@pytest.fixture
def wf_db(sqlite_url: str) -> Iterator[Db]:
    db = Db(sqlite_url)
    yield db
    db.engine.dispose()


@pytest.fixture
async def wf_client(ts_env, settings: Settings, wf_db: Db) -> AsyncIterator[Client]:  # noqa: ANN001
    """The conftest's time-skipping server with a worker running the real activities (the
    conftest's settings: no quiet hours, no frequency cap, so the nudge goes out as soon as
    the counter crosses; tests/test_email_workflow.py shows both rules delaying email)."""
    async with build_worker(ts_env.client, settings, wf_db.factory):
        yield ts_env.client


async def entity(client: Client, settings: Settings, db: Db, plan: str, stage: str) -> str:
    """A new customer and its ``customer-{id}``: a fresh signup (trialing) or an entity
    already in ``stage``."""
    cid = db.customer(plan, stage=stage)
    start = start_input(settings, cid, plan)
    if stage != "trialing":
        start = replace(start, state=CustomerState(customer_id=cid, plan=plan, stage=stage,
                                                   stage_changed_at=dt.datetime.now(UTC)))
    await signal_customer(client, cid, CustomerEvent(f"signup:{cid}", "signup"), start=start,
                          task_queue=settings.task_queue)
    return cid


def usage_emails(db: Db, cid: str) -> list[EmailMessage]:
    return [m for m in emails(db.factory, cid) if m.campaign == "usage"]


def timeline_of(db: Db, cid: str, kind: str) -> list[LifecycleEvent]:
    return [e for e in timeline(db.factory, cid) if e.kind == kind]


def events(cid: str, n: int, prefix: str, metric: str = "ai_requests") -> list[dict[str, object]]:
    return [{"customer_id": cid, "metric": metric, "quantity": 1, "idempotency_key": f"{prefix}{i}"}
            for i in range(n)]


async def test_nudge_names_the_next_tier_and_its_price_once_per_period(
    wf_client: Client, settings: Settings, wf_db: Db
) -> None:
    cid = await entity(wf_client, settings, wf_db, "starter", ACTIVE)
    svc = UsageService(wf_db.factory)
    res = svc.ingest(events(cid, 800, "a"))
    assert [c.threshold for c in res.crossings] == [80]
    report = await deliver(wf_client, svc, res.crossings)
    assert (report.sent, report.failed) == (1, 0)
    [mail] = await eventually(lambda: usage_emails(wf_db, cid))
    assert mail.template == "usage_nudge" and mail.category == "marketing"
    assert "80%" in mail.subject
    for text in (mail.text, mail.html):
        assert "Professional is $49/month" in text
        assert "200 requests left" in text
        assert "api access" in text
    # the same crossing delivered again (a retry), and more usage in the period: no new email
    await deliver(wf_client, svc, res.crossings)
    assert svc.ingest(events(cid, 50, "b")).crossings == []
    await wf_client.get_workflow_handle(customer_workflow_id(cid)).query("state")
    assert len(usage_emails(wf_db, cid)) == 1
    # the limit: a hard limit sends the limit-reached email, once
    hit = svc.check({"customer_id": cid, "metric": "ai_requests", "quantity": 150})
    assert hit.allowed and [c.threshold for c in hit.crossings] == [100]
    await deliver(wf_client, svc, hit.crossings)
    await eventually(lambda: len(usage_emails(wf_db, cid)) == 2)
    limit_mail = usage_emails(wf_db, cid)[1]
    assert limit_mail.template == "usage_limit_reached" and limit_mail.category == "transactional"
    assert "Professional is $49/month" in limit_mail.text
    refused = svc.check({"customer_id": cid, "metric": "ai_requests"})
    assert not refused.allowed and refused.crossings == []
    # next period: counters start afresh and the nudge may go out again, once
    nxt = dt.datetime.now(UTC) + dt.timedelta(days=40)
    later = svc.ingest([{**e, "timestamp": nxt.isoformat()} for e in events(cid, 820, "n")],
                       now=nxt)
    assert [c.threshold for c in later.crossings] == [80]
    await deliver(wf_client, svc, later.crossings)
    await eventually(lambda: len(usage_emails(wf_db, cid)) == 3)
    assert [m.step for m in usage_emails(wf_db, cid)] == ["nudge_80", "limit_reached", "nudge_80"]


async def test_trial_customers_get_the_trial_version_and_soft_limits_an_overage_notice(
    wf_client: Client, settings: Settings, wf_db: Db
) -> None:
    cid = await entity(wf_client, settings, wf_db, "starter", "trialing")
    svc = UsageService(wf_db.factory)
    nudge = svc.ingest(events(cid, 4, "s", metric="storage_gb"))  # 4 of 5 GB
    over = svc.ingest(events(cid, 2, "t", metric="storage_gb"))  # 6 of 5 GB: soft
    await deliver(wf_client, svc, nudge.crossings + over.crossings)
    mails = await eventually(lambda: (m := usage_emails(wf_db, cid)) and len(m) == 2 and m)
    assert sorted(m.template for m in mails) == ["usage_nudge_trial", "usage_overage_trial"]
    assert all("Professional" in m.text and "$49/month" in m.text for m in mails)


async def test_no_usage_email_to_a_customer_in_dunning(
    wf_client: Client, settings: Settings, wf_db: Db
) -> None:
    cid = await entity(wf_client, settings, wf_db, "professional", PAST_DUE)
    svc = UsageService(wf_db.factory)
    res = svc.ingest([{"customer_id": cid, "metric": "ai_requests", "quantity": 9000,
                       "idempotency_key": "big"}])
    await deliver(wf_client, svc, res.crossings)
    [skip] = await eventually(lambda: timeline_of(wf_db, cid, "email_skipped"))
    assert skip.campaign == "usage" and "past_due" in skip.detail["reason"]
    assert usage_emails(wf_db, cid) == []


async def test_a_crossing_survives_temporal_being_unreachable(
    wf_client: Client, settings: Settings, wf_db: Db
) -> None:
    cid = await entity(wf_client, settings, wf_db, "starter", ACTIVE)
    svc = UsageService(wf_db.factory)
    res = svc.ingest(events(cid, 850, "d"))
    # nothing listens on this port: the signal fails, the crossing stays in the outbox
    dead = await connect(Settings(temporal_address=f"127.0.0.1:{free_port()}",
                                  _env_file=None), lazy=True)  # type: ignore[call-arg]
    report = await deliver(dead, svc, res.crossings)
    assert (report.sent, report.failed) == (0, 1)
    with wf_db.factory() as s:
        row = s.scalars(select(UsageSignal).where(UsageSignal.customer_id == cid)).one()
        assert row.signalled_at is None and row.attempts == 1 and "unreachable" in row.last_error.lower()
    assert usage_emails(wf_db, cid) == []
    # Temporal is back; the retry path (API loop / `lifecycle usage resend`) sends it once due
    again = await resend_pending(wf_client, svc, older_than=dt.timedelta(0))
    assert again.sent == 0  # still backing off
    with wf_db.factory() as s:
        s.get(UsageSignal, row.id).next_attempt_at = dt.datetime.now(UTC)  # type: ignore[union-attr]
        s.commit()
    again = await resend_pending(wf_client, svc, older_than=dt.timedelta(0))
    assert (again.sent, again.failed) == (1, 0)
    [mail] = await eventually(lambda: usage_emails(wf_db, cid))
    assert mail.template == "usage_nudge"
    with wf_db.factory() as s:
        assert s.get(UsageSignal, row.id).signalled_at is not None  # type: ignore[union-attr]


async def test_lifecycle_usage_resend_sends_what_was_left_in_the_outbox(
    ts_env, wf_client: Client, settings: Settings, wf_db: Db  # noqa: ANN001
) -> None:
    from typer.testing import CliRunner

    from starter.cli.app import app

    cid = await entity(wf_client, settings, wf_db, "starter", ACTIVE)
    UsageService(wf_db.factory).ingest(events(cid, 810, "r"))  # crossed; nobody signalled it
    target = ts_env.client.service_client.config.target_host
    env = {"LIFECYCLE_DATABASE_URL": wf_db.url, "LIFECYCLE_TEMPORAL_ADDRESS": target}
    result = await asyncio.to_thread(CliRunner().invoke, app, ["usage", "resend"], env=env)
    assert result.exit_code == 0, result.output
    assert "signal(s) sent, 0 still pending" in result.stdout
    [mail] = await eventually(lambda: usage_emails(wf_db, cid))
    assert mail.template == "usage_nudge"
    again = await asyncio.to_thread(CliRunner().invoke, app, ["usage", "resend"], env=env)
    assert again.stdout.strip().endswith("0 signal(s) sent, 0 still pending")


async def test_a_nudge_held_by_quiet_hours_is_dropped_once_the_limit_is_reached(
    ts_env, settings: Settings, wf_db: Db  # noqa: ANN001
) -> None:
    """80 % crossed during quiet hours: the nudge waits; 100 % arrives first: the stale nudge never goes."""
    now = dt.datetime.now(UTC)
    quiet = settings.model_copy(update={
        "email_quiet_hours_start": (now - dt.timedelta(hours=1)).time().replace(microsecond=0),
        "email_quiet_hours_end": (now + dt.timedelta(hours=3)).time().replace(microsecond=0),
    })
    async with build_worker(ts_env.client, quiet, wf_db.factory):
        client = ts_env.client
        cid = await entity(client, quiet, wf_db, "starter", ACTIVE)  # customer in UTC
        svc = UsageService(wf_db.factory)
        [nudge] = svc.ingest(events(cid, 800, "a")).crossings
        await deliver(client, svc, [nudge])
        await eventually(lambda: timeline_of(wf_db, cid, "email_deferred"))
        assert usage_emails(wf_db, cid) == []

        hit = svc.check({"customer_id": cid, "metric": "ai_requests", "quantity": 200})
        await deliver(client, svc, hit.crossings)
        await eventually(lambda: [m.step for m in usage_emails(wf_db, cid)] == ["limit_reached"])
        [skip] = await eventually(lambda: timeline_of(wf_db, cid, "email_skipped"))
        assert "limit was reached" in skip.detail["reason"]
        # the nudge's workflow has ended without sending; past the quiet hours, still no nudge
        nudge_wf = usage_workflow_id(cid, nudge.metric, nudge.period_start, nudge.threshold)
        assert await client.get_workflow_handle(nudge_wf).result() == EMAIL_SKIPPED
        await ts_env.sleep(dt.timedelta(hours=5))
        assert [m.step for m in usage_emails(wf_db, cid)] == ["limit_reached"]

