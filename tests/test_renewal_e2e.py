"""The renewal reminders end to end: an annual subscription through the HTTP API (the real
Stripe activities against localstripe, the mirror they write), the reminder that reads
the mirror, and a cancellation through the API that drops the reminder still waiting.
Time-skipping Temporal, SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from lifecycle.contracts.customer import CustomerState
from lifecycle.contracts.ids import customer_workflow_id, renewal_workflow_id
from starter.api.app import create_app
from tests.support.helpers import emails, eventually, timeline
from tests.support.stripe import new_customer_id, signed_up
from worker import build_worker
from workflows.customer import CustomerWorkflow

AUTH = {"Authorization": "Bearer test-key"}


@pytest.fixture
async def running(stripe_settings, client, session_factory, synced) -> AsyncIterator[httpx.AsyncClient]:  # noqa: ANN001
    """The API and a worker with the real activities (Stripe = localstripe)."""
    app = create_app(stripe_settings, temporal=client)
    async with build_worker(client, stripe_settings, session_factory), app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test", headers=AUTH, timeout=60
        ) as http:
            yield http


async def test_an_annual_subscription_is_reminded_with_the_mirrored_amount_and_a_cancel_drops_the_rest(
    running: httpx.AsyncClient, client, stripe_settings, session_factory, ts_env  # noqa: ANN001
) -> None:
    cid = new_customer_id()
    await signed_up(client, stripe_settings, session_factory, cid)
    created = await running.post(
        f"/v1/customers/{cid}/subscription",
        json={"plan": "professional", "interval": "year", "payment_method_id": "pm_card_visa"},
    )
    assert created.status_code == 201, created.text
    state: CustomerState = await client.get_workflow_handle(customer_workflow_id(cid)).query(CustomerWorkflow.state)
    period_end = state.billing.current_period_end
    assert period_end is not None and state.billing.interval == "year"
    assert state.retention.renewal_period_end == period_end
    renewal = client.get_workflow_handle(renewal_workflow_id(cid, period_end))

    until_first = period_end - timedelta(days=30) - await ts_env.get_current_time()
    await ts_env.sleep(until_first + timedelta(hours=1))

    def reminders() -> list[str]:
        return [m.step for m in emails(session_factory, cid) if m.campaign == "renewal"]

    await eventually(lambda: reminders() == ["renewal_30_days"])
    [mail] = [m for m in emails(session_factory, cid) if m.campaign == "renewal"]
    assert "$490" in mail.text  # what localstripe bills for Professional yearly, from the mirror

    cancel = await running.delete(f"/v1/customers/{cid}/subscription")
    assert cancel.status_code == 200 and cancel.json()["cancel_at_period_end"] is True
    assert await renewal.result() == "dropped"
    skipped = [e.detail for e in timeline(session_factory, cid) if e.kind == "email_skipped" and e.campaign == "renewal"]
    assert skipped == [{"step": "renewal_7_days", "template": "renewal_reminder", "reason": "the customer canceled"}]
    await ts_env.sleep(timedelta(days=24))  # past the 7-day reminder's time
    assert reminders() == ["renewal_30_days"]
