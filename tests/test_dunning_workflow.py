"""Dunning on the time-skipping server with the real workflow code and the real activities:
Stripe through localstripe (the retries charge the invoice for real), email to the outbox,
the database for the timeline, the suspension and the cases. Three weeks take seconds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from lifecycle.contracts.search_attributes import DUNNING_STATE
from lifecycle.settings import Settings
from tests.support.dunning import (
    POLICY,
    cases,
    exists,
    failing_customer,
    mail_texts,
    mails,
    run_row,
    usage_check,
)
from tests.support.helpers import eventually, timeline
from tests.support.stripe import GOOD_CARD, add_card, charges
from worker import build_worker
from workflows.dunning import DunningWorkflow

WARNING, REMINDER, SUSPENDED = "dunning_warning", "dunning_reminder", "dunning_suspended"
RECOVERED, ENDED, CARD, ACTION = "dunning_recovered", "dunning_ended", "dunning_card_update", "dunning_action_required"


@pytest.fixture
async def worker(client: Client, stripe_settings: Settings, session_factory, synced) -> AsyncIterator[Settings]:
    async with build_worker(client, stripe_settings, session_factory):
        yield stripe_settings


def retries(session_factory, cid: str) -> list[tuple[str, str]]:
    return [(e.detail["retry"], e.detail["outcome"]) for e in timeline(session_factory, cid) if e.kind == "dunning_retry"]


async def test_recovered_on_the_second_retry(
    ts_env: WorkflowEnvironment, client, session_factory, stripe_acts, stripe_client, worker
):
    f = await failing_customer(client, worker, session_factory, stripe_acts, stripe_client)
    await eventually(lambda: exists(f.dunning))
    await eventually(lambda: mails(session_factory, f.cid) == [WARNING])
    text = mail_texts(session_factory, f.cid, WARNING)[0]
    assert "$99" in text and "$99.00" not in text and "/billing/card?token=" in text
    await eventually(lambda: f.stage_is("past_due"))

    await ts_env.sleep(timedelta(days=1, hours=1))  # retry 1: the same failing card
    await eventually(lambda: retries(session_factory, f.cid) == [("retry_1", "declined")])
    assert usage_check(session_factory, f.cid)["allowed"] is True  # grace: access kept

    add_card(stripe_client, f.stripe_customer, GOOD_CARD)  # the new default is charged
    await ts_env.sleep(timedelta(days=2))  # day 3: retry 2 pays, before the day-3 reminder
    assert await f.dunning.result() == "recovered"
    assert retries(session_factory, f.cid) == [("retry_1", "declined"), ("retry_2", "paid")]
    assert stripe_client.v1.invoices.retrieve(f.invoice).status == "paid"
    await eventually(lambda: f.stage_is("active"))
    assert mails(session_factory, f.cid) == [WARNING, RECOVERED]
    recovered = next(e for e in timeline(session_factory, f.cid) if e.kind == "dunning_recovered")
    assert recovered.detail["how"] == "retry_2" and recovered.detail["days"] == pytest.approx(3, abs=0.1)
    assert cases(session_factory, f.cid)[f.invoice].outcome == "recovered"
    assert run_row(session_factory, f.dunning_id()).suspended is False

    await ts_env.sleep(timedelta(days=30))  # nothing more: no reminder, no suspension
    assert mails(session_factory, f.cid) == [WARNING, RECOVERED]
    assert usage_check(session_factory, f.cid)["allowed"] is True
    assert (await f.dunning.describe()).typed_search_attributes.get(DUNNING_STATE) == "recovered"


def policy_with(tmp_path: Path, **changes: str) -> Path:
    """campaigns.toml with ``[dunning]`` keys replaced (e.g. end_action="unpaid")."""
    text = POLICY.read_text()
    for key, value in changes.items():
        old = next(line for line in text.splitlines() if line.startswith(f"{key} = "))
        text = text.replace(old, f"{key} = {value}", 1)
    path = tmp_path / "campaigns.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("end_action", ["cancel", "unpaid", "leave_past_due"])
async def test_never_recovered_suspends_after_grace_and_takes_the_end_action(
    ts_env: WorkflowEnvironment, client, stripe_settings, session_factory, synced, stripe_acts,
    stripe_client, tmp_path, end_action,
):
    settings = stripe_settings.model_copy(update={
        "policy_file": policy_with(tmp_path, end_action=f'"{end_action}"'),
    })
    async with build_worker(client, settings, session_factory):
        f = await failing_customer(client, settings, session_factory, stripe_acts, stripe_client)
        await eventually(lambda: exists(f.dunning))
        await ts_env.sleep(timedelta(days=6, hours=23))  # grace: warned, reminded, access kept
        await eventually(lambda: mails(session_factory, f.cid) == [WARNING, REMINDER, REMINDER])
        assert usage_check(session_factory, f.cid)["allowed"] is True

        await ts_env.sleep(timedelta(hours=2))  # day 7: the last retry fails, then suspended
        await eventually(lambda: mails(session_factory, f.cid) == [WARNING, REMINDER, REMINDER, SUSPENDED])
        assert [r for r, _ in retries(session_factory, f.cid)] == ["retry_1", "retry_2", "retry_3", "retry_4"]
        refused = usage_check(session_factory, f.cid)
        assert refused["allowed"] is False and refused["payment_overdue"] is True
        assert "payment is overdue" in refused["reason"]
        assert run_row(session_factory, f.dunning_id()).state == "suspended"

        await ts_env.sleep(timedelta(days=14, hours=1))  # day 21: the end action
        await eventually(lambda: ENDED in mails(session_factory, f.cid))
        ended = next(e for e in timeline(session_factory, f.cid) if e.kind == "dunning_ended")
        assert ended.detail["action"] == end_action
        sub = stripe_client.v1.subscriptions.retrieve(f.sub.stripe_subscription_id)
        row = run_row(session_factory, f.dunning_id())
        if end_action == "cancel":
            assert await f.dunning.result() == "canceled"
            assert sub.status == "canceled"
            await eventually(lambda: f.stage_is("canceled"))
            assert cases(session_factory, f.cid)[f.invoice].outcome == "lost"
        elif end_action == "unpaid":
            assert sub.status != "canceled" and row.state == "unpaid" and row.suspended
            assert usage_check(session_factory, f.cid)["payment_overdue"] is True
            assert await f.stage_is("past_due")
            await f.paid()  # paid at last (a new card): recovered, access back at once
            assert await f.dunning.result() == "recovered"
            assert usage_check(session_factory, f.cid)["allowed"] is True
            await eventually(lambda: f.stage_is("active"))
        else:
            assert await f.dunning.result() == "left_past_due"
            assert sub.status != "canceled" and not row.suspended
            assert usage_check(session_factory, f.cid)["allowed"] is True
            assert await f.stage_is("past_due")
        assert mails(session_factory, f.cid).count(SUSPENDED) == 1


async def test_card_updated_mid_dunning_ends_it_at_once(
    ts_env: WorkflowEnvironment, client, session_factory, stripe_acts, stripe_client, worker
):
    f = await failing_customer(client, worker, session_factory, stripe_acts, stripe_client)
    await eventually(lambda: exists(f.dunning))
    await ts_env.sleep(timedelta(days=8))  # suspended
    await eventually(lambda: usage_check(session_factory, f.cid)["payment_overdue"])
    await f.paid()  # the customer paid with a new card (invoice.paid)
    assert await f.dunning.result() == "recovered"
    assert usage_check(session_factory, f.cid)["allowed"] is True  # the very next check
    await eventually(lambda: f.stage_is("active"))
    recovered = next(e for e in timeline(session_factory, f.cid) if e.kind == "dunning_recovered")
    assert recovered.detail["how"] == "card_update" and recovered.detail["days"] == pytest.approx(8, abs=0.1)
    assert mails(session_factory, f.cid)[-1] == RECOVERED
    assert cases(session_factory, f.cid)[f.invoice].how == "card_update"


async def test_a_hard_decline_is_never_retried(
    ts_env: WorkflowEnvironment, client, session_factory, stripe_acts, stripe_client, worker
):
    f = await failing_customer(client, worker, session_factory, stripe_acts, stripe_client, fail=False)
    await f.fail(code="expired_card")
    await eventually(lambda: exists(f.dunning))
    await eventually(lambda: mails(session_factory, f.cid) == [WARNING])
    assert "will not accept this card again" in mail_texts(session_factory, f.cid, WARNING)[0]
    await ts_env.sleep(timedelta(days=8))
    await eventually(lambda: SUSPENDED in mails(session_factory, f.cid))
    assert retries(session_factory, f.cid) == []
    assert charges(stripe_client, f.stripe_customer) == 1  # the first charge only
    assert cases(session_factory, f.cid)[f.invoice].hard_decline is True


async def test_three_d_secure_sends_the_authentication_link_instead_of_retrying(
    ts_env: WorkflowEnvironment, client, session_factory, stripe_acts, stripe_client, worker
):
    f = await failing_customer(client, worker, session_factory, stripe_acts, stripe_client, fail=False)
    url = "https://invoice.stripe.com/i/acct_test/authenticate"
    await f.action_required(url)
    await eventually(lambda: exists(f.dunning))
    await eventually(lambda: sorted(mails(session_factory, f.cid)) == sorted([WARNING, ACTION]))
    assert url in mail_texts(session_factory, f.cid, ACTION)[0]
    await ts_env.sleep(timedelta(days=4))
    await eventually(lambda: REMINDER in mails(session_factory, f.cid))
    assert retries(session_factory, f.cid) == []
    await f.paid()  # authenticated on the hosted page
    assert await f.dunning.result() == "recovered"


async def test_a_second_failed_invoice_joins_the_running_dunning(
    ts_env: WorkflowEnvironment, client, session_factory, stripe_acts, stripe_client, worker
):
    f = await failing_customer(client, worker, session_factory, stripe_acts, stripe_client)
    await eventually(lambda: exists(f.dunning))
    await f.fail("stripe:evt_fail_2", invoice="in_second_one", amount=4900)
    await eventually(lambda: set(cases(session_factory, f.cid)) == {f.invoice, "in_second_one"})
    assert not await exists(client.get_workflow_handle(f.dunning_id("in_second_one")))
    details = await f.dunning.query(DunningWorkflow.details)
    assert sorted(i.invoice_id for i in details.invoices) == sorted([f.invoice, "in_second_one"])

    await f.paid()  # one paid: the other is still open, dunning goes on, stage stays past_due
    await eventually(lambda: cases(session_factory, f.cid)[f.invoice].outcome == "recovered")
    assert await f.stage_is("past_due")
    assert (await f.dunning.describe()).status.name == "RUNNING"
    await f.voided("in_second_one")
    assert await f.dunning.result() == "recovered"
    assert cases(session_factory, f.cid)["in_second_one"].outcome == "closed"
    await eventually(lambda: f.stage_is("active"))


async def test_a_voided_invoice_leaves_dunning_without_a_recovery_email(
    ts_env: WorkflowEnvironment, client, session_factory, stripe_acts, stripe_client, worker
):
    f = await failing_customer(client, worker, session_factory, stripe_acts, stripe_client)
    await eventually(lambda: exists(f.dunning))
    await ts_env.sleep(timedelta(days=8))
    await eventually(lambda: usage_check(session_factory, f.cid)["payment_overdue"])
    await f.voided()
    assert await f.dunning.result() == "closed"
    assert usage_check(session_factory, f.cid)["allowed"] is True
    assert RECOVERED not in mails(session_factory, f.cid)
    await eventually(lambda: f.stage_is("active"))
    assert cases(session_factory, f.cid)[f.invoice].outcome == "closed"


async def test_a_failure_twice_and_out_of_order_changes_nothing(
    ts_env: WorkflowEnvironment, client, session_factory, stripe_acts, stripe_client, worker
):
    f = await failing_customer(client, worker, session_factory, stripe_acts, stripe_client, fail=False)
    await f.fail("stripe:evt_a2", attempt=2, code="insufficient_funds")
    await f.fail("stripe:evt_a2", attempt=2, code="insufficient_funds")  # the same event again
    await f.fail("stripe:evt_a1", attempt=1, code="expired_card")  # an older one, arriving late
    await eventually(lambda: exists(f.dunning))
    await eventually(lambda: len([e for e in timeline(session_factory, f.cid) if e.kind == "invoice_failed"]) == 1)
    details = await f.dunning.query(DunningWorkflow.details)
    assert [(i.attempt_count, i.decline_code, i.hard_decline) for i in details.invoices] == [
        (2, "insufficient_funds", False)
    ]
    await eventually(lambda: mails(session_factory, f.cid) == [WARNING])
    await f.paid()
    await f.fail("stripe:evt_a3_late", attempt=1)  # a failure heard after the payment
    assert await f.dunning.result() == "recovered"
    await eventually(lambda: f.stage_is("active"))


async def test_ops_extend_grace_moves_the_suspension_and_retry_now_charges_at_once(
    ts_env: WorkflowEnvironment, client, session_factory, stripe_acts, stripe_client, worker
):
    """The ops actions reach the real dunning child: extend-grace moves the suspension
    (day 7 -> day 12), retry-now charges the open invoice at once; both audited, a bad
    one refused with the child's reason."""
    from sqlalchemy import select

    from lifecycle.models import AuditEntry
    from starter.ops.actions import ActionRefused, ActionRequest, take_action

    def act(action: str, **kw) -> ActionRequest:
        return ActionRequest(action=action, reason="promised to pay on Friday", actor="ada@support", **kw)

    f = await failing_customer(client, worker, session_factory, stripe_acts, stripe_client)
    await eventually(lambda: exists(f.dunning))
    await eventually(lambda: mails(session_factory, f.cid) == [WARNING])

    extended = await take_action(client, session_factory, f.cid, act("extend-grace", days=5))
    assert extended.done == "dunning: extend-grace taken"
    await ts_env.sleep(timedelta(days=7, hours=2))  # past the policy's day 7: still in grace
    assert usage_check(session_factory, f.cid)["allowed"] is True
    assert SUSPENDED not in mails(session_factory, f.cid)
    await ts_env.sleep(timedelta(days=5))  # day 12: suspended now
    await eventually(lambda: SUSPENDED in mails(session_factory, f.cid))
    assert usage_check(session_factory, f.cid)["payment_overdue"] is True

    before = len(retries(session_factory, f.cid))
    add_card(stripe_client, f.stripe_customer, GOOD_CARD)  # the new default
    await take_action(client, session_factory, f.cid, act("retry-now"))
    assert retries(session_factory, f.cid)[before:] == [("manual_1", "paid")]  # an ops retry, counted apart
    assert await f.dunning.result() == "recovered"
    assert usage_check(session_factory, f.cid)["allowed"] is True

    with pytest.raises(ActionRefused) as refused:  # no dunning any more
        await take_action(client, session_factory, f.cid, act("extend-grace", days=3))
    assert refused.value.status == 409
    with session_factory() as s:
        rows = list(s.scalars(select(AuditEntry).where(AuditEntry.customer_id == f.cid).order_by(AuditEntry.id)))
    # each money action: its intent before acting, the entity's record, its outcome after; the
    # refused one (no dunning running) acted on nothing and wrote nothing
    assert [(r.action, r.detail.get("phase"), r.actor) for r in rows] == [
        ("extend-grace", "intent", "ada@support"), ("extend-grace", None, "ada@support"),
        ("extend-grace", "outcome", "ada@support"),
        ("retry-now", "intent", "ada@support"), ("retry-now", None, "ada@support"),
        ("retry-now", "outcome", "ada@support"),
    ]
    assert rows[2].detail["outcome"] == "dunning: extend-grace taken" and rows[0].detail["days"] == 5


async def test_the_product_hears_each_dunning_state_and_the_suspension_by_signed_webhook(
    ts_env: WorkflowEnvironment, client, session_factory, stripe_acts, stripe_client, worker
):
    """dunning.state_changed for every state, customer.entitlements_changed when access is
    suspended and when it comes back; delivered to a real receiver, verified with
    standardwebhooks."""
    from lifecycle.db import session_scope
    from lifecycle.webhooks.endpoints import add_endpoint
    from tests.support.webhook_receiver import receiving

    async with receiving() as receiver:
        with session_scope(session_factory) as s:
            new = add_endpoint(s, receiver.url("/hooks"), ["dunning.state_changed", "customer.entitlements_changed"],
                               engine_url=worker.public_url, allow_private=True, https_only=False)
            receiver.secrets["/hooks"] = new.secret
        f = await failing_customer(client, worker, session_factory, stripe_acts, stripe_client)
        await eventually(lambda: exists(f.dunning))
        await ts_env.sleep(timedelta(days=7, hours=2))  # grace, then suspended
        await eventually(lambda: SUSPENDED in mails(session_factory, f.cid))
        await f.paid()
        assert await f.dunning.result() == "recovered"

        def seen(r) -> list[tuple[str, str]]:
            return [(e["type"], e["data"].get("state") or e["data"]["reason"])
                    for e in r.accepted() if e["data"].get("customer_id") == f.cid]

        await receiver.until(lambda r: ("dunning.state_changed", "recovered") in seen(r))
        assert seen(receiver) == [
            ("dunning.state_changed", "warning"), ("dunning.state_changed", "reminder"),
            ("dunning.state_changed", "grace"), ("dunning.state_changed", "suspended"),
            ("customer.entitlements_changed", "payment_overdue"),
            ("dunning.state_changed", "recovered"), ("customer.entitlements_changed", "suspension_lifted"),
        ]
        assert all(r.verified for r in receiver.requests)
