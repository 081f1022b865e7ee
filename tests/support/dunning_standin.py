"""A stand-in for the payment-recovery campaign's DunningWorkflow (built on its own branch),
registered under the same name with the two updates the ops actions reach by name — the
samples' pattern for child workflows (tests/hello/hello_child_test.py). It proves the
routing of extend-grace and retry-now; the real child's behaviour is tested with it."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

MAX_GRACE_DAYS = 30


@workflow.defn(name="DunningWorkflow")
class DunningStandIn:
    def __init__(self) -> None:
        self.grace_days = 0
        self.retries = 0
        self.done = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.done)

    @workflow.update
    def extend_grace(self, days: int, reason: str) -> str:
        self.grace_days += days
        return f"grace extended by {days} days"

    @extend_grace.validator
    def _check_grace(self, days: int, reason: str) -> None:
        if self.grace_days + days > MAX_GRACE_DAYS:
            raise ApplicationError(f"grace is at most {MAX_GRACE_DAYS} days")

    @workflow.update
    def retry_now(self, reason: str) -> str:
        self.retries += 1
        return "retrying the invoice now"

    @workflow.query
    def status(self) -> dict[str, int]:
        return {"grace_days": self.grace_days, "retries": self.retries}
