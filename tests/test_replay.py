"""Replay the recorded histories (tests/histories) against today's workflow code.

A non-deterministic edit to a workflow (a new timer, a reordered activity) fails here
instead of in production. Version such changes with ``workflow.patched`` and record
new histories with ``python -m tests.record_histories`` (trial, onboarding,
continue-as-new), ``tests.record_usage_histories`` (usage nudges) or
``tests.record_billing_histories`` (subscriptions, trial conversion, dunning, plan
changes), ``tests.record_dunning_histories`` (payment recovery),
``tests.record_card_expiry_histories`` (pre-dunning) or ``tests.record_growth_histories``
(renewal reminders, expansion offer, team promotion), ``tests.record_webhooks_histories``
(webhooks to the product), ``tests.record_ops_histories`` (pause, resume, skip-step,
cancel-campaign), ``tests.record_ops_paused_starts_histories`` (campaigns started while
marketing is paused) or ``tests.record_retention_histories`` (save offers, win-back),
keeping the old ones.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from lifecycle.contracts import catalog
from tests.support.replay_variants import (
    CustomerWorkflowWithAnUnversionedChangeActivity,
    CustomerWorkflowWithAnUnversionedConversionPause,
    CustomerWorkflowWithAPatchedChangeActivity,
    CustomerWorkflowWithAPatchedConversionPause,
    TrialWorkflowWithAnUnversionedTimer,
    TrialWorkflowWithAPatchedTimer,
)
from worker import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def _load(path: Path) -> WorkflowHistory:
    workflow_id = json.loads(path.read_text())["events"][0]["workflowExecutionStartedEventAttributes"].get(
        "workflowId", path.stem
    )
    return WorkflowHistory.from_json(workflow_id, path.read_text())


def test_there_are_histories_to_replay() -> None:
    names = {p.name.split(".")[0] for p in HISTORIES}
    assert {
        "customer_converted",
        "trial_converted",
        "onboarding_skip",
        "customer_continue_as_new",
        "customer_billing_trial_conversion",
        "customer_billing_subscription_changes",
        "customer_billing_dunning_stages",
        "plan_change_downgrade",
        "trial_subscribed",
        "plan_change_dropped",
        "dunning_recovered",
        "dunning_canceled",
        "dunning_subscription_ended",
        "customer_dunning_subscription_ended",
        "customer_dunning_recovered",
        "customer_dunning_canceled",
        "card_expiry_reminded",
        "card_expiry_replaced",
        "customer_card_expiry",
        "customer_retention",
        "customer_retention_held",
        "customer_retention_plan_change",
        "renewal_moved",
        "renewal_reminded",
        "offer_team_promotion",
        "offer_expansion",
        "customer_webhooks",
        "webhook_delivery_retried",
        "webhook_delivery_disabled",
        "customer_ops_paused_skipped",  # the ops controls (tests/record_ops_histories.py)
        "onboarding_ops_paused_skipped",
        "customer_ops_cancelled",
        "customer_retention_offer_expired",
        "customer_retention_pause",
        "customer_retention_won_back",
        "customer_retention_lost",
        "winback_reactivated",
        "winback_trial_lost",
        "customer_ops_paused_starts",  # started while paused (tests/record_ops_paused_starts_histories.py)
        "renewal_ops_started_paused",
        "offer_ops_started_paused",
        "offer_ops_started_paused_skipped",
        "customer_retention_offer_withdrawn",  # a plain cancel withdraws the open offer
        "dunning_new_card",  # a new default card retries at once (tests/record_dunning_histories.py)
        "customer_dunning_new_card",
        "customer_policy_version",  # hears a published version, continues with its id (record_histories.py)
        "customer_policy_version_loaded",  # the next run: loads the version by id first
    } <= names


def test_the_policy_version_histories_load_it_through_activities() -> None:
    """The run that heard the signal loaded the latest (policy_latest) and continued with the id
    only; the next run loaded that version (policy_version) before anything else."""
    here = HISTORIES[0].parent
    first = json.loads((here / "customer_policy_version.v22.json").read_text())["events"]
    scheduled = [e["activityTaskScheduledEventAttributes"]["activityType"]["name"] for e in first
                 if e["eventType"].endswith("ACTIVITY_TASK_SCHEDULED")]
    assert scheduled.count("policy_latest") == 2  # the signal, then the check at continue-as-new
    carried = json.loads(base64.b64decode(
        first[-1]["workflowExecutionContinuedAsNewEventAttributes"]["input"]["payloads"][0]["data"]))
    assert (carried["policy"], carried["tiers"]) == (None, None) and carried["state"]["policy_version"] == 1
    loaded = json.loads((here / "customer_policy_version_loaded.v22.json").read_text())["events"]
    first_activity = next(e for e in loaded if e["eventType"].endswith("ACTIVITY_TASK_SCHEDULED"))
    assert first_activity["activityTaskScheduledEventAttributes"]["activityType"]["name"] == "policy_version"


def test_the_entity_histories_since_the_webhooks_publish_their_events() -> None:
    """From v10 (and customer_webhooks) on, the entity's histories schedule publish_webhook;
    the older ones, replayed above, do not: the patch keeps both paths."""
    for name in ("customer_converted.v10.json", "customer_webhooks.v1.json",
                 "customer_billing_subscription_changes.v10.json"):
        assert "publish_webhook" in (HISTORIES[0].parent / name).read_text(), name
    assert "publish_webhook" not in (HISTORIES[0].parent / "customer_converted.v4.json").read_text()


EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.name)
def test_histories_carry_no_email_addresses(path: Path) -> None:
    """Histories are committed: customers appear in them by id only. (A worker's identity,
    ``pid@host``, is not an address.)"""
    found = [m for m in EMAIL.findall(path.read_text()) if not m.split("@")[0].isdigit()]
    assert found == []


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.name)
async def test_recorded_history_replays_on_current_code(path: Path) -> None:
    await Replayer(workflows=list(WORKFLOWS)).replay_workflow(_load(path))


async def test_an_unversioned_change_fails_replay_and_a_patched_one_passes() -> None:
    history = _load(next(p for p in HISTORIES if p.name.startswith("trial_converted")))
    with pytest.raises(NondeterminismError):
        await Replayer(workflows=[TrialWorkflowWithAnUnversionedTimer]).replay_workflow(history)
    await Replayer(workflows=[TrialWorkflowWithAPatchedTimer]).replay_workflow(history)


@pytest.mark.parametrize(
    ("history", "unversioned", "patched"),
    [
        (
            "customer_billing_trial_conversion",
            CustomerWorkflowWithAnUnversionedConversionPause,
            CustomerWorkflowWithAPatchedConversionPause,
        ),
        (
            "customer_billing_subscription_changes",
            CustomerWorkflowWithAnUnversionedChangeActivity,
            CustomerWorkflowWithAPatchedChangeActivity,
        ),
    ],
)
async def test_the_billing_histories_catch_an_unversioned_billing_change(
    history: str, unversioned: type, patched: type
) -> None:
    """An edit to the billing path of CustomerWorkflow (a timer before the trial conversion
    charges; an activity before a plan change reaches Stripe) breaks the workflows that
    already went that way; behind workflow.patched it does not."""
    recorded = [p for p in HISTORIES if p.name.startswith(f"{history}.")]
    assert recorded, f"no {history} history recorded"
    for path in recorded:
        with pytest.raises(NondeterminismError):
            await Replayer(workflows=[unversioned]).replay_workflow(_load(path))
        await Replayer(workflows=[patched]).replay_workflow(_load(path))


def _prices_swapped(monkeypatch: pytest.MonkeyPatch, a: str, b: str) -> None:
    """An operator's edit to the catalog: tiers ``a`` and ``b`` trade prices."""
    pa, pb = catalog.PLANS_BY_CODE[a], catalog.PLANS_BY_CODE[b]
    swap = {"monthly_price_cents", "annual_price_cents"}
    monkeypatch.setitem(catalog.PLANS_BY_CODE, a, replace(pa, **{k: getattr(pb, k) for k in swap}))
    monkeypatch.setitem(catalog.PLANS_BY_CODE, b, replace(pb, **{k: getattr(pa, k) for k in swap}))
    monkeypatch.setattr(catalog, "PLANS", tuple(catalog.PLANS_BY_CODE.values()))


async def test_a_price_edit_cannot_flip_the_plan_change_of_a_workflow_with_a_tier_snapshot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Upgrade-now or downgrade-later is decided on the tiers in the workflow's input (v4
    on): with business and professional trading prices in the catalog, the recorded
    downgrade still replays. A history from before the snapshot (v3) read the catalog when
    deciding, so the same edit turns its downgrade into an upgrade and breaks its replay:
    that is what the snapshot prevents for workflows started from now on."""
    snapshot = next(p for p in HISTORIES if p.name == "customer_billing_subscription_changes.v4.json")
    before = next(p for p in HISTORIES if p.name == "customer_billing_subscription_changes.v3.json")
    _prices_swapped(monkeypatch, "business", "professional")
    await Replayer(workflows=list(WORKFLOWS)).replay_workflow(_load(snapshot))
    with pytest.raises(NondeterminismError):
        await Replayer(workflows=list(WORKFLOWS)).replay_workflow(_load(before))


def test_the_snapshot_histories_carry_the_tiers() -> None:
    for name in ("customer_billing_subscription_changes.v4.json", "usage_nudge_80.v4.json"):
        started = json.loads((HISTORIES[0].parent / name).read_text())["events"][0]
        payload = started["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]["data"]
        assert json.loads(base64.b64decode(payload))["tiers"]["tiers"], name
