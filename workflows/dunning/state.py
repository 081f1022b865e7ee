"""The state of one dunning run, and what every one of its steps reads.

:class:`DunningRun` holds what DunningWorkflow (workflows/dunning/workflow.py) knows:
the invoices, the schedule, the stage and suspension, what ops asked for; and the views
of it that every step uses: the open and retryable invoices, the next step, the snapshot
saved to ``dunning_runs``, the emails' variables and the product's webhooks. The steps
that act on it live beside it: the retries (``retry.py``) and the end (``end_action.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from lifecycle.contracts.dunning import (
        CAMPAIGN,
        ENGINE,
        OPEN,
        CardChanged,
        DunningInput,
        DunningInvoice,
        DunningSetup,
        DunningSnapshot,
        InvoiceClosed,
        InvoiceFailed,
        SubscriptionEnded,
    )
    from lifecycle.contracts.policy import DunningPolicy
    from workflows.controls import EntityReports
    from workflows.dunning.effects import DunningEffects, email_context
    from workflows.dunning.schedule import DunningSchedule, retryable



def _message(err: ActivityError) -> str:
    cause = err.cause
    return cause.message if isinstance(cause, FailureError) else str(err)



class DunningRun:
    """One dunning run's state (DunningWorkflow's ``@workflow.init`` builds it)."""

    def __init__(self, input: DunningInput) -> None:
        self._input = input
        self._inbox: list[InvoiceFailed | InvoiceClosed | CardChanged | SubscriptionEnded] = []
        self._invoices: dict[str, DunningInvoice] = {}
        self._setup: DunningSetup | None = None
        self._started_at: datetime | None = None
        self._state = "starting"
        self._since: datetime | None = None
        self._schedule = DunningSchedule()  # what is due when, and what was taken
        self._effects = DunningEffects(input.customer_id)  # the timeline, the saved state, webhooks, emails
        self._reports = EntityReports(CAMPAIGN)  # what it waits for, told to the entity
        self._retry_requests: list[str] = []  # retry_now reasons not yet carried out
        self._retries_carried_out = 0
        self._last_retry: str = ""
        self._suspended = False
        self._finished = False  # dunning is over (recovered, closed, canceled, left)
        self._recovered_how: str | None = None
        self._wake = False
        self._cards_retried: list[str] = []  # card_changed: the cards already charged
        # card_changed: the cards whose retry charged nothing (card_hard_declined), how often;
        # heard again (a real update), retried under new keys (DUNNING_CARD_HARD_DECLINED_NOT_COUNTED)
        self._cards_skipped: dict[str, int] = {}
        self._end_error: str | None = None  # the end action's Stripe call failing (retried)
        self._end_failing_since: datetime | None = None


    # --- schedule: workflows/dunning/schedule.py ----------------------------------------

    @property
    def _policy(self) -> DunningPolicy:
        assert self._setup is not None
        return self._setup.policy

    def _next_step(self) -> tuple[str | None, datetime | None]:
        if self._finished:
            return None, None
        return self._schedule.next_step(self._open(), workflow.now())

    def _open(self) -> list[DunningInvoice]:
        return [i for i in self._invoices.values() if i.status == OPEN]

    def _retryable(self) -> list[DunningInvoice]:
        return retryable(self._open())

    def _close(self, inv: DunningInvoice, status: str, how: str) -> None:
        inv.status, inv.closed_how, inv.closed_at = status, how, workflow.now()

    # --- steps --------------------------------------------------------------------------

    async def _announce(self, was_suspended: bool, key: str) -> None:
        await self._effects.announce(
            state=self._state, suspended=self._suspended, since=self._since, days=self._days(),
            open_invoices=[i.invoice_id for i in self._open()], was_suspended=was_suspended, key=key,
        )

    # --- effects: workflows/dunning/effects.py ------------------------------------------

    def _days(self) -> float:
        return self._schedule.days(workflow.now())

    def _context(self) -> dict[str, Any]:
        return email_context(self._open(), self._schedule, self._days())

    def _snapshot(self) -> DunningSnapshot:
        assert self._started_at is not None and self._since is not None
        step, at = self._next_step()
        return DunningSnapshot(
            customer_id=self._input.customer_id,
            workflow_id=workflow.info().workflow_id,
            state=self._state,
            since=self._since,
            started_at=self._started_at,
            retry_mode=self._setup.retry_mode if self._setup else ENGINE,
            suspended=self._suspended,
            invoices=list(self._invoices.values()),
            next_retry_at=self._schedule.next_retry_at(self._open()),
            next_step=step,
            next_step_at=at,
            ended=self._finished,
            recovered_how=self._recovered_how,
            end_action=self._schedule.end_taken,
            run_id=self._effects.run_id,
            end_action_error=self._end_error,
            end_action_failing_since=self._end_failing_since,
        )
