"""A workflow that publishes webhook events through workflows/notify.py, for the delivery
tests (ordering, retries) without driving a whole lifecycle."""

from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.notify import publish


@dataclass
class PublishInput:
    customer_id: str
    type: str
    # one event per entry: its key and data
    events: list[dict[str, Any]] = field(default_factory=list)


@workflow.defn
class PublishWorkflow:
    @workflow.run
    async def run(self, input: PublishInput) -> None:
        for event in input.events:
            await publish(input.customer_id, input.type, dict(event), key=str(event["n"]))
