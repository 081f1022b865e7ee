"""A minimal campaign for the email workflow tests: send each step in turn via send_step_email."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from lifecycle.contracts.email import SendEmailResult
    from lifecycle.contracts.policy import EmailStep
    from workflows.email_step import send_step_email


@dataclass
class StepsInput:
    customer_id: str
    campaign: str
    steps: list[EmailStep] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)  # what the campaign gives every step


@workflow.defn
class EmailStepsWorkflow:
    @workflow.run
    async def run(self, inp: StepsInput) -> list[SendEmailResult]:
        results = []
        for step in inp.steps:
            results.append(await send_step_email(inp.customer_id, inp.campaign, step, inp.context))
        return results
