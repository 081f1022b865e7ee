"""Edited copies of TrialWorkflow for tests/test_replay.py (a module of their own, so the
workflow sandbox can import it): one unversioned edit and the same edit patched."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from lifecycle.messages import TrialInput
    from workflows.trial import TrialWorkflow


@workflow.defn(name="TrialWorkflow")
class TrialWorkflowWithAnUnversionedTimer(TrialWorkflow):
    """Today's trial with one unversioned edit: a pause before the reminders."""

    @workflow.run
    async def run(self, input: TrialInput) -> str:
        await workflow.sleep(timedelta(hours=1))
        return await super().run(input)


@workflow.defn(name="TrialWorkflow")
class TrialWorkflowWithAPatchedTimer(TrialWorkflow):
    """The same edit behind workflow.patched: safe for running workflows."""

    @workflow.run
    async def run(self, input: TrialInput) -> str:
        if workflow.patched("pause-before-reminders"):
            await workflow.sleep(timedelta(hours=1))
        return await super().run(input)
