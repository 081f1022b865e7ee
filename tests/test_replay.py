"""Replay the recorded histories (tests/histories) against today's workflow code.

A non-deterministic edit to a workflow (a new timer, a reordered activity) fails here
instead of in production. Version such changes with ``workflow.patched`` and record
new histories with ``python -m tests.record_histories`` (keeping the old ones).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from tests.replay_variants import (
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
    assert {"customer_converted", "trial_converted", "onboarding_skip", "customer_continue_as_new"} <= names


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.name)
async def test_recorded_history_replays_on_current_code(path: Path) -> None:
    await Replayer(workflows=list(WORKFLOWS)).replay_workflow(_load(path))


async def test_an_unversioned_change_fails_replay_and_a_patched_one_passes() -> None:
    history = _load(next(p for p in HISTORIES if p.name.startswith("trial_converted")))
    with pytest.raises(NondeterminismError):
        await Replayer(workflows=[TrialWorkflowWithAnUnversionedTimer]).replay_workflow(history)
    await Replayer(workflows=[TrialWorkflowWithAPatchedTimer]).replay_workflow(history)
