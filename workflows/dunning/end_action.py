"""The end of a dunning: the end action and its confirmation by Stripe, or the recovery.

On the end day the policy's end action (cancel | unpaid | leave_past_due), or the one
Stripe took itself; a cancel is recorded as done only once Stripe confirms it (retried with
backoff while it fails). When no invoice is left open: recovered (or closed).
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.stripe import StripeActivities
    from lifecycle.contracts.billing import (
        CancelInput,
    )
    from lifecycle.contracts.dunning import (
        BY_STRIPE,
        CAMPAIGN,
        CANCELED,
        CANCELING,
        CLOSED,
        LEFT_PAST_DUE,
        PAID,
        RECOVERED,
        UNPAID,
    )
    from lifecycle.contracts.search_attributes import DUNNING_STATE
    from workflows import patches
    from workflows.campaign import report_finished
    from workflows.dunning.effects import recovered_context
    from workflows.dunning.state import DunningRun, _message
    from workflows.options import (
        DUNNING_END_RETRY_FIRST,
        DUNNING_END_RETRY_MAX,
        STRIPE_RETRY,
        STRIPE_TIMEOUT,
    )


class DunningEnd(DunningRun):
    """How DunningWorkflow ends: its end action, or no invoice left open."""

    async def _end_action(self, by_stripe: str | None = None) -> None:
        """The policy's end action on the end day, or (``by_stripe``: canceled | unpaid)
        the one Stripe took itself, recorded as Stripe's."""
        action = {CANCELED: "cancel", UNPAID: "unpaid"}[by_stripe] if by_stripe else self._policy.end_action
        was_suspended = self._suspended
        self._schedule.end_taken = action
        cid = self._input.customer_id
        detail: dict[str, Any] = {"action": action, "days": self._days(),
                                  "open_invoices": [i.invoice_id for i in self._open()]}
        if by_stripe:
            detail["by"] = BY_STRIPE
        if action == "cancel" and self._input.stripe_subscription_id and not by_stripe and (
            workflow.patched(patches.DUNNING_END_CONFIRMED)
        ):
            await self._cancel_until_confirmed()  # canceled only once Stripe says so
            self._state, self._suspended, self._finished = CANCELED, False, True
        elif action == "cancel":
            self._state, self._suspended, self._finished = CANCELED, False, True
            if self._input.stripe_subscription_id and not by_stripe:
                try:
                    await workflow.execute_activity_method(
                        StripeActivities.cancel_subscription,
                        CancelInput(cid, self._input.stripe_subscription_id,
                                    f"{self._effects.base}/end/cancel", at_period_end=False),
                        start_to_close_timeout=STRIPE_TIMEOUT,
                        retry_policy=STRIPE_RETRY,
                    )
                except ActivityError as err:
                    detail["error"] = _message(err)
        elif action == "unpaid":
            self._state = UNPAID  # suspended stays; waits to be paid or voided, no more mail
        else:
            self._state, self._suspended, self._finished = LEFT_PAST_DUE, False, True
        self._since = workflow.now()
        await self._effects.save(self._snapshot())
        await self._effects.record("dunning_ended", "ended", detail)
        workflow.upsert_search_attributes([DUNNING_STATE.value_set(self._state)])
        await self._announce(was_suspended, "ended")
        step = self._policy.notices.ended
        if step is not None:
            await self._effects.email(step, {**self._context(), "end_action": action},
                                      key=f"{self._effects.base}/{step.name}")
        if self._finished:
            await report_finished(cid, CAMPAIGN, self._state)

    async def _cancel_until_confirmed(self) -> None:
        """Cancel the subscription in Stripe until Stripe confirms it. A call failing beyond
        its activity retries (an outage) is tried again after 5 min, doubling up to an hour,
        for as long as it fails; meanwhile the run is ``canceling`` (access stays as it is),
        saved with the error and since when (``lifecycle_dunning_end_action_failing``, the
        ops digest, the customer view) and recorded on the timeline once."""
        assert self._input.stripe_subscription_id is not None
        wait, attempt = DUNNING_END_RETRY_FIRST, 0
        while True:
            key = f"{self._effects.base}/end/cancel" + (f"/{attempt}" if attempt else "")
            try:
                await workflow.execute_activity_method(
                    StripeActivities.cancel_subscription,
                    CancelInput(self._input.customer_id, self._input.stripe_subscription_id, key,
                                at_period_end=False),
                    start_to_close_timeout=STRIPE_TIMEOUT,
                    retry_policy=STRIPE_RETRY,
                )
                break
            except ActivityError as err:
                attempt += 1
                self._state, self._end_error = CANCELING, _message(err)
                self._end_failing_since = self._end_failing_since or workflow.now()
                await self._effects.save(self._snapshot())
                if attempt == 1:
                    await self._effects.record("dunning_end_action_failing", "end-failing", {
                        "action": "cancel", "error": self._end_error, "retry_in_seconds": wait.total_seconds(),
                    })
                await workflow.sleep(wait)
                wait = min(wait * 2, DUNNING_END_RETRY_MAX)
        if attempt:
            self._end_error = None
            await self._effects.record("dunning_end_action_confirmed", "end-confirmed", {
                "action": "cancel", "attempts": attempt + 1,
                "failing_since": self._end_failing_since.isoformat() if self._end_failing_since else None,
            })
            self._end_failing_since = None

    async def _end_recovered(self) -> str:
        was_suspended = self._suspended
        paid = [i for i in self._invoices.values() if i.status == PAID]
        self._state = RECOVERED if paid else CLOSED
        closed = sorted(self._invoices.values(), key=lambda i: i.closed_at or workflow.now())
        self._recovered_how = (paid or closed)[-1].closed_how if closed else None
        self._suspended, self._finished, self._since = False, True, workflow.now()
        await self._effects.save(self._snapshot())
        await self._effects.record("dunning_recovered" if paid else "dunning_closed", "over", {
            "how": self._recovered_how, "days": self._days(), "after_end_action": self._schedule.end_taken,
            "invoices": {i.invoice_id: i.closed_how for i in self._invoices.values()},
        })
        workflow.upsert_search_attributes([DUNNING_STATE.value_set(self._state)])
        await self._announce(was_suspended, "over")
        step = self._policy.notices.recovered
        if paid and step is not None:
            await self._effects.email(step, recovered_context(paid, self._days()),
                                      key=f"{self._effects.base}/{step.name}")
        await report_finished(self._input.customer_id, CAMPAIGN, self._state)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state
