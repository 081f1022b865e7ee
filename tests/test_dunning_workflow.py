"""Dunning on the time-skipping server with the real workflow code and the real activities:
Stripe through localstripe (the retries charge the invoice for real), email to the outbox,
the database for the timeline, the suspension and the cases. Three weeks take seconds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from lifecycle.contracts.search_attributes import DUNNING_STATE
from lifecycle.settings import Settings
from tests.support.dunning import (
    cases,
    exists,
    failing_customer,
    mail_texts,
    mails,
    run_row,
    usage_check,
)
from tests.support.helpers import eventually, timeline
from tests.support.stripe import GOOD_CARD, add_card
from worker import build_worker

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
    assert "$99.00" in text and "/billing/card?token=" in text
    await eventually(lambda: f.stage_is("past_due"))

    await ts_env.sleep(timedelta(days=1, hours=1))  # retry 1: the same failing card
    await eventually(lambda: retries(session_factory, f.cid) == [("retry_1", "declined")])
    assert usage_check(session_factory, f.cid)["allowed"] is True  # grace: access kept

    add_card(stripe_client, f.stripe_customer, GOOD_CARD, default=False)  # newest card is charged
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
