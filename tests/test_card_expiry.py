"""Pre-dunning on the time-skipping server, with the real entity, campaign and email
activity (outbox provider, SQLite): card-expiry reminders 30 and 7 days before the default
card stops working, dropped when the card is replaced, the new card's own in their place."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from lifecycle.contracts.cards import card_expires_at
from lifecycle.contracts.customer import CustomerEvent
from lifecycle.contracts.events import DefaultCard, customer_event
from lifecycle.contracts.ids import campaign_workflow_id, customer_workflow_id
from lifecycle.links import CARD_PURPOSE, read_link_token
from lifecycle.settings import Settings
from starter.signals.send import signal_customer, start_input
from tests.support.helpers import add_customer, emails, eventually, timeline
from worker import build_worker
from workflows.customer import CustomerWorkflow


@pytest.fixture
async def worker(client: Client, settings: Settings, session_factory) -> AsyncIterator[None]:
    async with build_worker(client, settings, session_factory):
        yield


async def sign_up(client: Client, settings: Settings, session_factory, cid: str) -> WorkflowHandle:
    add_customer(session_factory, cid)
    start = start_input(settings, cid, "starter")
    await signal_customer(
        client, cid, CustomerEvent(f"signup:{cid}", "signup"), start=start, task_queue=settings.task_queue
    )
    # a card on file: the trial converts (no Stripe here) and the customer stays active,
    # where reminders apply (not after an expired trial: `skip_stages`)
    await signal_customer(client, cid, CustomerEvent(f"pm:{cid}", "payment_method_added"))
    return client.get_workflow_handle(customer_workflow_id(cid))


def card_event(pm: str, exp: datetime, last4: str = "4242") -> CustomerEvent:
    return customer_event(
        f"card:{pm}:{uuid.uuid4().hex[:6]}",
        DefaultCard(payment_method_id=pm, brand="visa", last4=last4, exp_month=exp.month, exp_year=exp.year),
    )


def reminders(session_factory, cid: str) -> list[str]:
    return [m.subject for m in emails(session_factory, cid) if m.campaign == "card_expiry"]


def month_of(at: datetime) -> datetime:
    """A card expiring in the month of ``at``."""
    return datetime(at.year, at.month, 1, tzinfo=UTC)


async def until(env: WorkflowEnvironment, when: datetime) -> None:
    await env.sleep(when - await env.get_current_time())


async def test_reminders_go_out_30_and_7_days_before_the_card_expires(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    cid = f"cus-{uuid.uuid4().hex[:8]}"
    handle = await sign_up(client, settings, session_factory, cid)
    exp = month_of(await ts_env.get_current_time() + timedelta(days=75))
    end = card_expires_at(exp.month, exp.year)
    await signal_customer(client, cid, card_event("pm_a", exp))
    await signal_customer(client, cid, card_event("pm_a", exp))  # heard twice (webhook + page): one campaign
    child = client.get_workflow_handle(campaign_workflow_id(cid, "card-expiry", f"{exp:%Y-%m}"))
    await eventually(lambda: _card_of(handle, "pm_a"))

    await until(ts_env, end - timedelta(days=30, hours=1))
    assert reminders(session_factory, cid) == []
    await until(ts_env, end - timedelta(days=30) + timedelta(hours=1))
    first = "Your Visa card ending 4242 expires in 30 days"
    await eventually(lambda: reminders(session_factory, cid) == [first])

    await until(ts_env, end - timedelta(days=7, hours=1))
    assert reminders(session_factory, cid) == [first]
    await until(ts_env, end - timedelta(days=7) + timedelta(hours=1))
    await eventually(lambda: reminders(session_factory, cid) == [first, "Your Visa card ending 4242 expires in 7 days"])
    assert await child.result() == "reminded"

    [_, mail] = [m for m in emails(session_factory, cid) if m.campaign == "card_expiry"]
    assert mail.category == "transactional" and f"{exp:%m/%Y}" in mail.text
    # the latest email's link opens this customer's card-update page (links expire after
    # LIFECYCLE_LINK_TTL_DAYS, counted from the send)
    url = next(w for w in mail.text.split() if "/billing/card?token=" in w)
    link = read_link_token(settings.link_secret, CARD_PURPOSE, url.split("token=", 1)[1],
                           now=await ts_env.get_current_time())
    assert link.customer_id == cid


async def test_a_new_card_cancels_the_old_cards_reminders_and_gets_its_own(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    cid = f"cus-{uuid.uuid4().hex[:8]}"
    handle = await sign_up(client, settings, session_factory, cid)
    now = await ts_env.get_current_time()
    old_exp, new_exp = month_of(now + timedelta(days=75)), month_of(now + timedelta(days=400))
    old_end, new_end = card_expires_at(old_exp.month, old_exp.year), card_expires_at(new_exp.month, new_exp.year)
    await signal_customer(client, cid, card_event("pm_old", old_exp, "0341"))
    old_child = client.get_workflow_handle(campaign_workflow_id(cid, "card-expiry", f"{old_exp:%Y-%m}"))
    await eventually(lambda: _card_of(handle, "pm_old"))

    await until(ts_env, old_end - timedelta(days=29))
    await eventually(lambda: reminders(session_factory, cid) == ["Your Visa card ending 0341 expires in 30 days"])
    # the customer updates the card between the two reminders
    await signal_customer(client, cid, card_event("pm_new", new_exp, "4242"))
    assert await old_child.result() == "replaced"
    await until(ts_env, old_end + timedelta(days=1))
    assert reminders(session_factory, cid) == ["Your Visa card ending 0341 expires in 30 days"]  # no 7-day one

    await until(ts_env, new_end - timedelta(days=6))
    await eventually(lambda: reminders(session_factory, cid) == [
        "Your Visa card ending 0341 expires in 30 days",
        "Your Visa card ending 4242 expires in 30 days",
        "Your Visa card ending 4242 expires in 7 days",
    ])
    state = await handle.query(CustomerWorkflow.state)
    assert state.card is not None and state.card.reminders_workflow_id == campaign_workflow_id(
        cid, "card-expiry", f"{new_exp:%Y-%m}"
    )


async def test_no_default_card_left_cancels_the_reminders_and_a_late_card_skips_the_30_day_one(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    cid = f"cus-{uuid.uuid4().hex[:8]}"
    handle = await sign_up(client, settings, session_factory, cid)
    exp = month_of(await ts_env.get_current_time() + timedelta(days=75))
    await signal_customer(client, cid, card_event("pm_a", exp))
    child = client.get_workflow_handle(campaign_workflow_id(cid, "card-expiry", f"{exp:%Y-%m}"))
    await eventually(lambda: _card_of(handle, "pm_a"))
    await signal_customer(client, cid, customer_event("card:none", DefaultCard(payment_method_id=None)))
    assert await child.result() == "replaced"
    assert (await handle.query(CustomerWorkflow.state)).card is None

    # a card that expires in under 30 days: the 30-day reminder is recorded as skipped
    soon = await ts_env.get_current_time() + timedelta(days=12)
    end = card_expires_at(soon.month, soon.year)
    if end - soon < timedelta(days=8):  # keep the 7-day reminder ahead of us
        soon = month_of(end + timedelta(days=1))
        end = card_expires_at(soon.month, soon.year)
    await signal_customer(client, cid, card_event("pm_b", soon))
    await until(ts_env, end - timedelta(days=6))
    await eventually(lambda: reminders(session_factory, cid) == ["Your Visa card ending 4242 expires in 7 days"])
    if end - await ts_env.get_current_time() < timedelta(days=30):
        skipped = [e.detail for e in timeline(session_factory, cid) if e.kind == "email_skipped"
                   and e.campaign == "card_expiry"]
        assert [d["step"] for d in skipped] == ["expiring_30_days"]


async def _card_of(handle: WorkflowHandle, pm: str) -> bool:
    card = (await handle.query(CustomerWorkflow.state)).card
    return card is not None and card.payment_method_id == pm and card.reminders_workflow_id is not None


async def test_a_customer_whose_trial_expired_gets_no_reminders(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
):
    cid = f"cus-{uuid.uuid4().hex[:8]}"
    add_customer(session_factory, cid)
    await signal_customer(client, cid, CustomerEvent(f"signup:{cid}", "signup"),
                          start=start_input(settings, cid, "starter"), task_queue=settings.task_queue)
    handle = client.get_workflow_handle(customer_workflow_id(cid))
    await ts_env.sleep(timedelta(days=14, hours=1))
    await eventually(lambda: _stage_is(handle, "expired"))
    exp = month_of(await ts_env.get_current_time() + timedelta(days=75))
    await signal_customer(client, cid, card_event("pm_late", exp))

    async def noted() -> bool:
        card = (await handle.query(CustomerWorkflow.state)).card
        return card is not None and card.payment_method_id == "pm_late"

    await eventually(noted)
    assert (await handle.query(CustomerWorkflow.state)).card.reminders_workflow_id is None  # type: ignore[union-attr]
    await until(ts_env, card_expires_at(exp.month, exp.year))
    assert reminders(session_factory, cid) == []


async def _stage_is(handle: WorkflowHandle, stage: str) -> bool:
    return (await handle.query(CustomerWorkflow.state)).stage == stage


@pytest.mark.parametrize("section, error", [
    ({"reminders": [{"name": "r", "template": "card_expiring", "days_before_end": 0}]}, "must be positive"),
    ({"reminders": [{"name": "r", "template": "card_expiring", "day_before": 3}]}, "unknown key"),
    ({"skip_stages": "canceled"}, "list of stage names"),
    ({"remind": []}, "expected a table with reminders and skip_stages"),
])
def test_a_malformed_card_expiry_section_is_refused_with_the_key(section, error) -> None:
    from lifecycle.contracts.policy import PolicyError, parse_policy

    with pytest.raises(PolicyError, match=error):
        parse_policy({"card_expiry": section})


def test_without_a_card_expiry_section_the_reminders_are_30_and_7_days() -> None:
    from lifecycle.contracts.policy import parse_policy

    policy = parse_policy({})
    assert [(r.days_before_end, r.template, r.category) for r in policy.card_expiry.reminders] == [
        (30, "card_expiring", "transactional"), (7, "card_expiring", "transactional")]
