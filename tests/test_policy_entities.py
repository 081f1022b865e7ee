"""Policy versions reach running customers: an entity of the previous release (its input
from a kept history: a policy without [save_offers], [winback] or [renewal]) or one
started with an old tier snapshot decides on the published version once it hears of it
(the signal `lifecycle policy publish` sends) or continues as new. Real workflow code
and activities on the time-skipping server, Stripe = localstripe, SQLite."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.converter import value_to_type
from temporalio.worker import Worker

from activities.policy import PolicyActivities
from lifecycle.contracts.customer import CustomerEvent, CustomerState, CustomerWorkflowInput
from lifecycle.contracts.ids import customer_workflow_id
from lifecycle.contracts.policy_versions import PolicyVersion, PolicyVersionQuery
from lifecycle.contracts.tiers import tiers_from_catalog
from starter.signals.policy import announce, publish_current
from starter.signals.send import signal_customer, start_input
from tests.support.helpers import add_customer, eventually, timeline
from tests.support.retention import Retained
from tests.support.stripe import new_customer_id
from worker import WORKFLOWS, build_activities
from workflows.customer import CustomerWorkflow

pytestmark = pytest.mark.usefixtures("ts_env")

HISTORIES = Path(__file__).parent / "histories"


def kept_input(name: str) -> CustomerWorkflowInput:
    """The input a kept history's first run started with (what that release carried)."""
    started = json.loads((HISTORIES / name).read_text())["events"][0]["workflowExecutionStartedEventAttributes"]
    raw = json.loads(base64.b64decode(started["input"]["payloads"][0]["data"]))
    return value_to_type(CustomerWorkflowInput, raw, [])


async def _start(ret: Retained, start: CustomerWorkflowInput) -> str:
    add_customer(ret.sessions, start.customer_id)
    await signal_customer(ret.client, start.customer_id, CustomerEvent(f"signup:{start.customer_id}", "signup"),
                          start=start, task_queue=ret.settings.task_queue)
    return start.customer_id


async def _subscribe(ret: Retained, cid: str, plan: str = "professional") -> None:
    r = await ret.http.post(f"/v1/customers/{cid}/subscription", json={"plan": plan, "payment_method_id": "pm_card_visa"})
    assert r.status_code == 201, r.text


async def _state_where(ret: Retained, cid: str, pred: Callable[[CustomerState], bool]) -> CustomerState:
    async def probe() -> CustomerState | None:
        state = await ret.state(cid)
        return state if pred(state) else None

    return await eventually(probe, timeout=30)  # type: ignore[return-value]


async def _publish(ret: Retained, *to: str) -> int:
    """Publish the files and signal ``to`` (the time-skipping server lists no workflows: the
    listing is tested on the dev server, tests/test_policy_versions.py)."""
    published = publish_current(ret.settings, ret.sessions, who="test")
    if to:
        out = await announce(ret.client, published.version.version_id, workflow_ids=[customer_workflow_id(c) for c in to])
        assert (out.signalled, out.errors) == (len(to), [])
    return published.version.version_id


async def test_a_customer_of_the_previous_release_gets_save_offers_after_publish(retained: Retained) -> None:
    old = kept_input("customer_converted.v1.json")
    assert old.policy is not None and old.policy.save_offers.offers == {} and old.policy.winback.steps == []
    cid = await _start(retained, replace(old, customer_id=new_customer_id("pol"), plan="starter"))
    await _subscribe(retained, cid)

    version = await _publish(retained, cid)
    await _state_where(retained, cid, lambda s: s.policy_version == version)
    r = await retained.http.delete(f"/v1/customers/{cid}/subscription", params={"reason": "too_expensive"})

    assert r.status_code == 200, r.text
    body = r.json()
    # the offer holds the cancellation in Stripe (cancel_at_period_end) while it is open
    assert (body["outcome"], body["save_offer"]["kind"], body["cancel_at_period_end"]) == ("save_offered", "coupon", True)
    assert [o.kind for o in retained.offers(cid)] == ["coupon"]
    adopted = [e for e in timeline(retained.sessions, cid) if e.kind == "policy_version"]
    assert [e.detail["version"] for e in adopted] == [version]


async def test_a_tier_added_to_the_catalog_is_accepted_after_publish(retained: Retained) -> None:
    full = tiers_from_catalog()
    before = replace(full, tiers=[t for t in full.tiers if t.code != "enterprise"])  # the snapshot of an older deploy
    cid = await _start(retained, replace(start_input(retained.settings, new_customer_id("pol"), "starter"), tiers=before))
    refused = await retained.http.post(
        f"/v1/customers/{cid}/subscription", json={"plan": "enterprise", "payment_method_id": "pm_card_visa"})
    assert refused.status_code >= 400 and "unknown plan 'enterprise'" in refused.text

    version = await _publish(retained, cid)
    await _state_where(retained, cid, lambda s: s.policy_version == version)
    await _subscribe(retained, cid, "enterprise")
    assert (await retained.state(cid)).billing.plan == "enterprise"


async def test_an_entity_that_missed_the_signal_converts_at_continue_as_new(retained: Retained) -> None:
    old = kept_input("customer_converted.v1.json")
    cid = await _start(retained, replace(old, customer_id=new_customer_id("pol"), plan="starter", max_events_per_run=2))
    version = await _publish(retained)  # published while it was down, say: it heard nothing
    await _subscribe(retained, cid)
    for n in range(3):
        await retained.client.get_workflow_handle(customer_workflow_id(cid)).signal(
            "event", CustomerEvent(f"act-{n}:{cid}", "activation", {"fact": f"fact_{n}"}))
    state = await _state_where(retained, cid, lambda s: s.runs >= 2)
    assert state.policy_version == version
    run = await retained.client.get_workflow_handle(customer_workflow_id(cid)).describe()
    history = await retained.client.get_workflow_handle(customer_workflow_id(cid), run_id=run.run_id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    carried = json.loads(started.input.payloads[0].data)
    assert (carried["policy"], carried["tiers"], carried["state"]["policy_version"]) == (None, None, version)

    r = await retained.http.delete(f"/v1/customers/{cid}/subscription", params={"reason": "too_expensive"})
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "save_offered"  # the new run loaded the version by its id


async def test_a_customer_of_the_previous_release_gets_the_winback_campaign_after_publish(retained: Retained) -> None:
    old = kept_input("customer_converted.v1.json")  # no [winback]: a cancellation started nothing
    cid = await _start(retained, replace(old, customer_id=new_customer_id("pol"), plan="starter"))
    await _subscribe(retained, cid)
    version = await _publish(retained, cid)
    await _state_where(retained, cid, lambda s: s.policy_version == version)

    r = await retained.http.delete(f"/v1/customers/{cid}/subscription", params={"at_once": "true"})
    assert r.status_code == 200 and r.json()["status"] == "canceled", r.text

    state = await _state_where(retained, cid, lambda s: "winback" in s.campaigns)
    assert state.campaigns["winback"] == f"customer-{cid}/winback/1"
    assert (await retained.client.get_workflow_handle(state.campaigns["winback"]).describe()).status is not None


async def test_a_run_continued_with_a_version_id_takes_a_subscribe_before_the_version_is_loaded(
    retained: Retained, stripe_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review finding 8: after a worker restart the first task of a run continued with only
    a version id runs the update validators before ``policy_version`` has answered; they
    judged on the built-in catalog then. Here the deployed catalog lacks "enterprise" (an
    older worker's files) while the published version has it: the subscribe waits for the
    version and succeeds, in Stripe too."""
    version = await _publish(retained)  # the full catalog, enterprise included
    full = tiers_from_catalog()
    older = replace(full, tiers=[t for t in full.tiers if t.code != "enterprise"])
    monkeypatch.setattr("workflows.subscription.tiers_from_catalog", lambda: older)

    gate, loading = asyncio.Event(), asyncio.Event()
    real = PolicyActivities(retained.sessions)

    @activity.defn(name="policy_version")
    async def slow_version(query: PolicyVersionQuery) -> PolicyVersion:
        loading.set()
        await gate.wait()
        return await real.version(query)

    queue = f"gated-{uuid.uuid4().hex[:8]}"
    acts = [a for a in build_activities(retained.settings, retained.sessions)
            if getattr(a, "__temporal_activity_definition").name != "policy_version"]
    cid = new_customer_id("pol")
    add_customer(retained.sessions, cid)
    continued = CustomerWorkflowInput(customer_id=cid, plan="starter",
                                      state=CustomerState(customer_id=cid, plan="starter", policy_version=version))
    async with Worker(retained.client, task_queue=queue, workflows=list(WORKFLOWS), activities=[*acts, slow_version]):
        handle = await retained.client.start_workflow(
            CustomerWorkflow.run, continued, id=customer_workflow_id(cid), task_queue=queue)
        await asyncio.wait_for(loading.wait(), 30)  # the run waits for its version
        asked = asyncio.create_task(retained.http.post(
            f"/v1/customers/{cid}/subscription", json={"plan": "enterprise", "payment_method_id": "pm_card_visa"}))

        async def accepted() -> bool:
            if asked.done():
                return True
            history = await handle.fetch_history()
            return any(e.HasField("workflow_execution_update_accepted_event_attributes") for e in history.events)

        await eventually(accepted, timeout=30)
        assert not asked.done(), (await asked).text  # before the fix: refused with "unknown plan 'enterprise'"
        gate.set()
        r = await asked
        assert r.status_code == 201, r.text
        sub = stripe_client.v1.subscriptions.retrieve(r.json()["stripe_subscription_id"])
        assert sub["items"]["data"][0]["plan"]["metadata"]["lifecycle_plan"] == "enterprise"
        state = await retained.state(cid)
        assert (state.billing.plan, state.policy_version) == ("enterprise", version)
