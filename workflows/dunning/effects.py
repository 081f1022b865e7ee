"""What DunningWorkflow tells, and to whom: the timeline, its saved state, the product, the customer.

The workflow owns one :class:`DunningEffects` (built with its customer's id) and calls it
with its facts; it keeps no state of its own:

- ``record``: a timeline entry (``workflows.timeline.record_event``), keyed on the workflow
  id and the step, so it is written once whatever crashes.
- ``save``: the run's snapshot to ``dunning_runs`` (state, suspension, next retry, next
  step, the invoices); the usage check reads the suspension from there.
- ``announce``: the product's webhooks, ``dunning.state_changed`` and, for a suspension
  or its lift, ``customer.entitlements_changed`` (behind ``patches.DUNNING_WEBHOOKS``).
- ``email`` and ``notice``: the dunning's emails (a stage's, the end's, the recovery's,
  and one invoice's card-update or 3-D Secure notice); their variables come from
  :func:`email_context` and :func:`recovered_context`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.dunning import DunningActivities
    from lifecycle.contracts.dunning import CAMPAIGN, DunningInvoice, DunningSnapshot
    from lifecycle.contracts.money import money, money_each
    from lifecycle.contracts.policy import EmailStep
    from lifecycle.contracts.webhooks import DUNNING_STATE_CHANGED, ENTITLEMENTS_CHANGED
    from workflows import patches
    from workflows.dunning.schedule import DunningSchedule
    from workflows.email_step import send_step_email
    from workflows.notify import publish
    from workflows.options import STORE_RETRY, STORE_TIMEOUT
    from workflows.timeline import record_event


class DunningEffects:
    """The effects of one dunning, for its customer; each keyed on this workflow's id."""

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        self.run_id = ""  # set by begin: the run its keys carry ("" before patches.DUNNING_KEYS_BY_RUN)

    def begin(self) -> None:
        """Decide once, as the run begins, whether its keys carry the run: a second dunning
        of the same invoice (the same workflow id) then sends and charges again."""
        if workflow.patched(patches.DUNNING_KEYS_BY_RUN):
            self.run_id = workflow.info().first_execution_run_id

    @property
    def base(self) -> str:
        """Every key's start: the workflow id, and the run when keys carry it."""
        wid = workflow.info().workflow_id
        return f"{wid}@{self.run_id}" if self.run_id else wid

    async def record(self, kind: str, step: str, detail: dict[str, Any]) -> None:
        """A timeline entry, written once per ``step``."""
        await record_event(self.customer_id, key=f"{self.base}:{step}", kind=kind,
                           campaign=CAMPAIGN, detail=detail)

    async def save(self, snapshot: DunningSnapshot) -> None:
        await workflow.execute_activity_method(
            DunningActivities.save, snapshot,
            start_to_close_timeout=STORE_TIMEOUT, retry_policy=STORE_RETRY,
        )

    async def announce(
        self, *, state: str, suspended: bool, since: datetime | None, days: float,
        open_invoices: list[str], was_suspended: bool, key: str,
    ) -> None:
        """Tell the product (webhooks): the new state, and a suspension or its lift as an
        entitlements change. Once per state change (the event id comes from ``key``)."""
        if not workflow.patched(patches.DUNNING_WEBHOOKS):
            return
        if self.run_id:  # a second run of the same invoice tells the product again
            key = f"{self.run_id}:{key}"
        await publish(self.customer_id, DUNNING_STATE_CHANGED, {
            "state": state, "suspended": suspended,
            "since": since.isoformat() if since else None,
            "days": days, "open_invoices": open_invoices,
        }, key=f"dunning:{key}")
        if was_suspended != suspended:
            await publish(self.customer_id, ENTITLEMENTS_CHANGED, {
                "reason": "payment_overdue" if suspended else "suspension_lifted",
                "suspended": suspended,
            }, key=f"dunning-entitlements:{key}")

    async def email(self, step: EmailStep, context: dict[str, Any], *, key: str) -> None:
        await send_step_email(self.customer_id, CAMPAIGN, step, context, key=key)

    async def notice(self, step: EmailStep | None, inv: DunningInvoice, extra: dict[str, Any]) -> None:
        """One invoice's notice (card update, 3-D Secure), once per invoice; none if the
        policy has none."""
        if step is None:
            return
        context = {"amount": money(inv.amount_due_cents, inv.currency), **extra}
        await self.email(step, context, key=f"{self.base}/{step.name}/{inv.invoice_id}")


def email_context(open_invoices: list[DunningInvoice], schedule: DunningSchedule, days: float) -> dict[str, Any]:
    """The variables of a stage's email (and the end's): the open amount, the decline, the
    days overdue, when access is suspended and when the end action comes."""
    suspend = next((s for s in schedule.policy.stages if s.suspend), None)
    return {
        "amount": _amounts(open_invoices),
        "invoice_count": len(open_invoices),
        "hard_decline": any(i.hard_decline for i in open_invoices),
        "decline_code": next((i.decline_code for i in open_invoices if i.decline_code), None),
        "days_overdue": int(days),
        "suspend_at": schedule.stage_at(suspend).isoformat() if suspend else None,
        "end_at": schedule.end_at().isoformat(),
        "end_action": schedule.policy.end_action,
    }


def recovered_context(paid: list[DunningInvoice], days: float) -> dict[str, Any]:
    """The variables of the recovery email: the amount paid, after how many days."""
    return {"amount": _amounts(paid), "days": round(days)}


def _amounts(invoices: list[DunningInvoice]) -> str:
    """The invoices' total in each currency, never one sum of two (``$99 + €10``)."""
    totals: dict[str, int] = {}
    for i in invoices:
        totals[i.currency.lower()] = totals.get(i.currency.lower(), 0) + i.amount_due_cents
    return money_each(totals)
