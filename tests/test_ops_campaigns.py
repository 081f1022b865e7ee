"""Ops controls on the campaigns that came after onboarding and the trial (time-skipping
server, the real worker and activities): win-back held by a pause and sent once at resume,
its day-7 step skipped (day 30 still comes), a renewal reminder skipped by ops, dunning's
why-waiting answer, card-expiry reminders (transactional) going out while marketing is
paused, its steps skippable, and the offers (due at once) made while paused: held until
resume and sent once, or skipped by ops and never sent."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from lifecycle.contracts.cards import card_expires_at
from lifecycle.contracts.ids import campaign_workflow_id, customer_workflow_id, renewal_workflow_id
from lifecycle.contracts.ops import WAIT_PAUSED, WAIT_TIMER, WAITING_QUERY, CampaignWaiting
from lifecycle.contracts.search_attributes import NEXT_STEP_AT, WAITS
from lifecycle.settings import Settings
from starter.ops.actions import ActionRefused, ActionRequest, take_action
from starter.ops.why import why_waiting
from starter.signals.send import signal_customer
from tests.support.dunning import exists as dunning_exists
from tests.support.dunning import failing_customer
from tests.support.helpers import eventually, timeline
from tests.support.retention import Retained
from tests.test_card_expiry import card_event, month_of, reminders, until
from tests.test_card_expiry import sign_up as card_sign_up
from tests.test_growth_workflow import customer, exists, periods, renewal_mails
from worker import build_worker

SKIPPED = "skipped by ops"


@pytest.fixture
async def worker(client: Client, settings: Settings, session_factory) -> AsyncIterator[None]:
    async with build_worker(client, settings, session_factory):
        yield


def act(action: str, reason: str = "customer asked support", **kw: object) -> ActionRequest:
    return ActionRequest(action=action, reason=reason, actor="ada@support", **kw)  # type: ignore[arg-type]


def ops_skips(sessions, cid: str) -> list[tuple[str | None, str]]:
    return [(e.campaign, e.detail["step"]) for e in timeline(sessions, cid)
            if e.kind == "email_skipped" and e.detail.get("reason", "").startswith(SKIPPED)]


async def campaign_waits(client: Client, cid: str, name: str) -> CampaignWaiting | None:
    why = await why_waiting(client, cid)
    found = [c for c in why.campaigns if c.campaign == name]
    return found[0] if found else None


async def _waits(client: Client, cid: str, name: str, kind: str, step: str | None = None) -> CampaignWaiting | None:
    w = await campaign_waits(client, cid, name)
    return w if w and w.waiting.kind == kind and (step is None or w.step == step) else None


# --- win-back (marketing) ------------------------------------------------------------------


async def test_winback_paused_across_its_day_7_step_sends_it_once_at_resume(
    ts_env: WorkflowEnvironment, retained: Retained
) -> None:
    cid = await retained.subscriber()
    r = await retained.http.delete(f"/v1/customers/{cid}/subscription", params={"at_once": "true"})
    assert r.status_code == 200, r.text
    await eventually(lambda: _waits(retained.client, cid, "winback", WAIT_TIMER))
    waits = await campaign_waits(retained.client, cid, "winback")
    assert waits is not None and waits.marketing and waits.next_step is not None
    first = waits.step

    paused = await take_action(retained.client, retained.sessions, cid, act("pause"))
    assert "winback" in paused.campaigns
    await ts_env.sleep(timedelta(days=8))  # the day-7 step comes due while paused
    held = await eventually(lambda: _waits(retained.client, cid, "winback", WAIT_PAUSED, first))
    assert held.paused
    assert retained.winback_emails(cid) == []

    await take_action(retained.client, retained.sessions, cid, act("resume", "back on"))
    await eventually(lambda: len(retained.winback_emails(cid)) == 1)
    await eventually(lambda: _waits(retained.client, cid, "winback", WAIT_TIMER))
    assert [m.step for m in retained.winback_emails(cid)] == [first]
    waits = await campaign_waits(retained.client, cid, "winback")
    assert waits is not None and waits.done_steps == [first] and waits.step != first


async def test_skip_step_on_winbacks_day_7_records_it_sends_nothing_and_day_30_still_comes(
    ts_env: WorkflowEnvironment, retained: Retained
) -> None:
    cid = await retained.subscriber()
    r = await retained.http.delete(f"/v1/customers/{cid}/subscription", params={"at_once": "true"})
    assert r.status_code == 200, r.text
    waits = await eventually(lambda: _waits(retained.client, cid, "winback", WAIT_TIMER, "winback_day_7"))
    assert waits.next_step == "winback_day_30" and waits.next_step_at is not None
    day_30 = waits.next_step_at

    result = await take_action(retained.client, retained.sessions, cid,
                               act("skip-step", campaign="winback", step="winback_day_7"))
    assert result.campaigns == ["winback"]
    waits = await eventually(lambda: _waits(retained.client, cid, "winback", WAIT_TIMER, "winback_day_30"))
    assert waits.waiting.until == day_30 and waits.skipped_steps == ["winback_day_7"]
    await ts_env.sleep(timedelta(days=8))  # past day 7
    assert retained.winback_emails(cid) == []
    assert ops_skips(retained.sessions, cid) == [("winback", "winback_day_7")]

    await ts_env.sleep(day_30 - await ts_env.get_current_time() + timedelta(hours=1))
    await eventually(lambda: [m.step for m in retained.winback_emails(cid)] == ["winback_day_30"])
    waits = await eventually(lambda: _waits(retained.client, cid, "winback", WAIT_TIMER, "winback_day_60"))
    assert waits.done_steps == ["winback_day_7", "winback_day_30"] and waits.skipped_steps == ["winback_day_7"]


# --- renewal (marketing) -------------------------------------------------------------------


async def test_skip_step_on_a_renewal_reminder_records_it_and_sends_nothing(
    ts_env: WorkflowEnvironment, client: Client, settings: Settings, session_factory, worker
) -> None:
    c = await customer(client, settings, session_factory, "professional")
    period_end = await ts_env.get_current_time() + timedelta(days=60)
    await c.subscription("professional", "year", period_end)
    await eventually(lambda: exists(client, renewal_workflow_id(c.id, period_end)))
    name = f"renewal/{period_end:%Y%m%d}"
    waits = await eventually(lambda: _waits(client, c.id, name, WAIT_TIMER, "renewal_30_days"))
    assert waits.next_step == "renewal_7_days"

    result = await take_action(client, session_factory, c.id, act("skip-step", campaign=name, step="renewal_30_days"))
    assert name in result.campaigns
    await eventually(lambda: _waits(client, c.id, name, WAIT_TIMER, "renewal_7_days"))
    await ts_env.sleep(timedelta(days=31))  # past the 30-day reminder's time
    assert renewal_mails(c) == []
    assert ops_skips(session_factory, c.id) == [("renewal", "renewal_30_days")]
    waits = await campaign_waits(client, c.id, name)
    assert waits is not None and waits.skipped_steps == ["renewal_30_days"]
    await ts_env.sleep(timedelta(days=23))  # the 7-day one still goes out
    await eventually(lambda: renewal_mails(c) == ["renewal_7_days"])


# --- dunning (billing: the waiting query only) --------------------------------------------


async def test_the_waiting_query_of_a_running_dunning_names_its_next_step_and_time(
    ts_env: WorkflowEnvironment, client, stripe_settings: Settings, session_factory, stripe_acts, stripe_client, synced
) -> None:
    async with build_worker(client, stripe_settings, session_factory):
        f = await failing_customer(client, stripe_settings, session_factory, stripe_acts, stripe_client)
        await eventually(lambda: dunning_exists(f.dunning))

        async def timer() -> CampaignWaiting | None:
            w: CampaignWaiting = await f.dunning.query(WAITING_QUERY, result_type=CampaignWaiting)
            return w if w.waiting.kind == WAIT_TIMER else None

        w = await eventually(timer)
        now = await ts_env.get_current_time()
        assert w.campaign == "dunning" and w.step and w.step == w.next_step
        assert w.waiting.until is not None and w.waiting.until == w.next_step_at and w.waiting.until > now
        assert not w.marketing and not w.skippable and not w.paused
        # the customer's why-waiting shows the same answer
        entry = await eventually(lambda: _waits(client, f.cid, "dunning", WAIT_TIMER))
        assert entry.step == w.step and entry.waiting.until == w.waiting.until
        # and the entity carries it: listed by --campaign dunning --waiting-for timer, its
        # NextStepAt the dunning's next step (a failing paid customer runs no other timer)
        async def entity_waits() -> tuple[list[str], object] | None:
            desc = await client.get_workflow_handle(customer_workflow_id(f.cid)).describe()
            waits = list(desc.typed_search_attributes.get(WAITS) or [])
            return (waits, desc.typed_search_attributes.get(NEXT_STEP_AT)) if "dunning:timer" in waits else None

        waits, next_at = await eventually(entity_waits)
        assert next_at == min(t for t in (w.waiting.until, *await _other_timers(client, f.cid)) if t)
        # billing: ops cannot skip its steps
        with pytest.raises(ActionRefused):
            await take_action(client, session_factory, f.cid, act("skip-step", campaign="dunning", step=w.step))


async def _other_timers(client: Client, cid: str) -> list:
    """The other campaigns' timers (the customer's why-waiting), e.g. a renewal's."""
    why = await why_waiting(client, cid)
    return [c.waiting.until for c in why.campaigns if c.campaign != "dunning" and c.waiting.kind == WAIT_TIMER]


# --- card-expiry (transactional) ------------------------------------------------------------


async def test_card_expiry_reminders_go_out_while_paused_and_a_step_can_be_skipped(
    ts_env: WorkflowEnvironment, client, settings, session_factory, worker
) -> None:
    cid = f"cus-{uuid.uuid4().hex[:8]}"
    await card_sign_up(client, settings, session_factory, cid)
    exp = month_of(await ts_env.get_current_time() + timedelta(days=75))
    end = card_expires_at(exp.month, exp.year)
    await take_action(client, session_factory, cid, act("pause"))
    await signal_customer(client, cid, card_event("pm_a", exp))
    child_id = campaign_workflow_id(cid, "card-expiry", f"{exp:%Y-%m}")

    waits = await eventually(lambda: _waits(client, cid, "card-expiry", WAIT_TIMER, "expiring_30_days"))
    assert waits.workflow_id == child_id and not waits.marketing

    await until(ts_env, end - timedelta(days=30) + timedelta(hours=1))  # due while paused: goes out
    await eventually(lambda: len(reminders(session_factory, cid)) == 1)
    await eventually(lambda: _waits(client, cid, "card-expiry", WAIT_TIMER, "expiring_7_days"))
    with pytest.raises(ActionRefused):  # it follows the card: not cancellable
        await take_action(client, session_factory, cid, act("cancel-campaign", campaign="card-expiry"))
    await take_action(client, session_factory, cid, act("skip-step", campaign="card-expiry",
                                                        step="expiring_7_days"))
    await until(ts_env, end - timedelta(days=6))
    assert len(reminders(session_factory, cid)) == 1
    await eventually(lambda: ops_skips(session_factory, cid) == [("card_expiry", "expiring_7_days")])
    assert await client.get_workflow_handle(child_id).result() == "reminded"




async def test_a_renewal_started_while_paused_starts_paused(
    ts_env: WorkflowEnvironment, client: Client, settings: Settings, session_factory, worker
) -> None:
    c = await customer(client, settings, session_factory, "professional")
    await take_action(client, session_factory, c.id, act("pause"))
    period_end = await ts_env.get_current_time() + timedelta(days=60)
    await c.subscription("professional", "year", period_end)
    name = f"renewal/{period_end:%Y%m%d}"

    async def paused() -> CampaignWaiting | None:
        w = await campaign_waits(client, c.id, name)
        return w if w and w.paused else None

    await eventually(paused)
    await ts_env.sleep(timedelta(days=31))  # the 30-day reminder comes due while paused
    await eventually(lambda: _waits(client, c.id, name, WAIT_PAUSED, "renewal_30_days"))
    assert renewal_mails(c) == []
    await take_action(client, session_factory, c.id, act("resume", "back on"))
    await eventually(lambda: renewal_mails(c) == ["renewal_30_days"])


# --- offers (marketing: the expansion offer and the team promotion) -----------------------


async def _seats_used(c, ts_env: WorkflowEnvironment) -> None:
    """Three seats in use: the team promotion's child starts (its step due at once)."""
    [p] = periods(await ts_env.get_current_time() - timedelta(days=10), 1)
    await c.usage("seats", 100, 3, 3, *p)


async def test_a_team_promotion_made_while_paused_goes_out_once_at_resume(
    ts_env: WorkflowEnvironment, client: Client, settings: Settings, session_factory, worker
) -> None:
    c = await customer(client, settings, session_factory, "professional")
    await take_action(client, session_factory, c.id, act("pause"))
    await _seats_used(c, ts_env)
    child = client.get_workflow_handle(campaign_workflow_id(c.id, "team-promotion"))
    held = await eventually(lambda: _waits(client, c.id, "team_promotion", WAIT_PAUSED, "team_promotion"))
    assert held.paused and held.marketing and held.workflow_id == child.id

    await ts_env.sleep(timedelta(days=3))  # held for days: nothing goes out
    assert c.mails("team_promotion") == []
    assert c.entries("offer_made", "team_promotion") == []
    assert await _waits(client, c.id, "team_promotion", WAIT_PAUSED, "team_promotion")

    resumed_at = await ts_env.get_current_time()
    resumed = await take_action(client, session_factory, c.id, act("resume", "back on"))
    assert "team_promotion" in resumed.campaigns
    assert await child.result() == "sent"
    assert [(m.step, m.status) for m in c.mails("team_promotion")] == [("team_promotion", "sent")]
    [offer] = await eventually(lambda: c.entries("offer_made", "team_promotion"))
    assert offer.detail["email"] == "sent" and offer.occurred_at >= resumed_at
    assert ops_skips(session_factory, c.id) == []


async def test_skip_step_on_a_held_expansion_offer_records_it_and_never_sends_it(
    ts_env: WorkflowEnvironment, client: Client, settings: Settings, session_factory, worker
) -> None:
    c = await customer(client, settings, session_factory, "professional")
    await take_action(client, session_factory, c.id, act("pause"))
    p = periods(await ts_env.get_current_time() - timedelta(days=30), 2)
    await c.usage("ai_requests", 80, 8000, 10000, *p[0])
    await c.usage("ai_requests", 80, 8100, 10000, *p[1])  # two high periods: the offer is made
    child = client.get_workflow_handle(campaign_workflow_id(c.id, "expansion", f"{p[1][0]:%Y%m%d}"))
    await eventually(lambda: _waits(client, c.id, "expansion", WAIT_PAUSED, "expansion_offer"))

    result = await take_action(client, session_factory, c.id, act("skip-step", campaign="expansion"))
    assert result.campaigns == ["expansion"]
    assert await child.result() == "skipped"
    await eventually(lambda: ops_skips(session_factory, c.id) == [("expansion", "expansion_offer")])
    [offer] = await eventually(lambda: c.entries("offer_made", "expansion"))
    assert offer.detail["email"] == "skipped" and offer.detail["reason"].startswith(SKIPPED)
    await take_action(client, session_factory, c.id, act("resume", "back on"))  # nothing left to send
    await ts_env.sleep(timedelta(days=1))
    assert c.mails("expansion") == []
