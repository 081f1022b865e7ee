"""Policy versions reach running customers: an entity of the previous release (its input
from a kept history: a policy without [save_offers], [winback] or [renewal]) or one
started with an old tier snapshot decides on the published version once it hears of it
(the signal `lifecycle policy publish` sends) or continues as new. Real workflow code
and activities on the time-skipping server, Stripe = localstripe, SQLite."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from temporalio.converter import value_to_type

from lifecycle.contracts.customer import CustomerEvent, CustomerState, CustomerWorkflowInput
from lifecycle.contracts.ids import customer_workflow_id
from lifecycle.contracts.tiers import tiers_from_catalog
from starter.signals.policy import announce, publish_current
from starter.signals.send import signal_customer, start_input
from tests.support.helpers import add_customer, eventually, timeline
from tests.support.retention import Retained
from tests.support.stripe import new_customer_id

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
