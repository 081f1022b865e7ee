"""DunningWorkflow (``customer-{id}/dunning/{first-invoice-id}``): payment recovery.

A child of the entity (ABANDON), one per customer at a time: a second failed invoice
joins it by the ``invoice_failed`` signal. Its stages come from the policy
(``[dunning]`` in campaigns.toml), keyed on days since the first failure: each stage is
saved (database, timeline, the ``DunningState`` search attribute) and sends its email;
from the first suspending stage the usage check refuses ("payment overdue"). In retry
mode ``engine`` it charges the open invoices on the retry days (a hard decline or a
payment needing 3-D Secure is never retried: the customer gets the card-update or the
authentication email); in mode ``stripe`` it never charges and reads Stripe's schedule
from the failures. At the end day it takes the end action (cancel | unpaid |
leave_past_due). It ends at once, in any stage, when no invoice is left open.

Signals only queue; the main loop handles them in order, so no handler awaits and the
state changes in one place. Every side effect has a key from the workflow id and the step
(``…/retry/2/in_…``), so a worker crash never sends or charges twice.

What is due when (the stages' days, the retry days, the end day, and how granted grace
moves them) is the schedule's: ``DunningSchedule`` (workflows/dunning/schedule.py), a
plain object this workflow owns; the loop takes the step it names and marks it taken.
What it tells (the timeline, its saved state, the product's webhooks, the emails and their
variables) goes through ``DunningEffects`` (workflows/dunning/effects.py).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.dunning import DunningActivities
    from lifecycle.contracts.campaigns import CampaignStatus
    from lifecycle.contracts.dunning import (
        BY_CARD_UPDATE,
        BY_CUSTOMER,
        BY_STRIPE,
        CAMPAIGN,
        CANCELED,
        CLOSED,
        ENGINE,
        STRIPE,
        UNPAID,
        CardChanged,
        DunningInput,
        DunningSnapshot,
        ExtendGrace,
        InvoiceClosed,
        InvoiceFailed,
        RetryNow,
        SubscriptionEnded,
    )
    from lifecycle.contracts.ops import (
        WAIT_ACTIVITY,
        WAIT_NOTHING,
        WAIT_SIGNAL,
        WAIT_TIMER,
        WAITING_QUERY,
        CampaignWaiting,
        Waiting,
    )
    from lifecycle.contracts.policy import DunningStage
    from lifecycle.contracts.search_attributes import DUNNING_STATE
    from workflows import patches
    from workflows.campaign import report_finished
    from workflows.dunning.end_action import DunningEnd
    from workflows.dunning.retry import DunningRetries
    from workflows.dunning.schedule import RETRY, STAGE
    from workflows.options import STORE_RETRY, STORE_TIMEOUT


@workflow.defn
class DunningWorkflow(DunningRetries, DunningEnd):
    @workflow.init
    def __init__(self, input: DunningInput) -> None:
        super().__init__(input)

    # --- messages -----------------------------------------------------------------------

    @workflow.signal
    def invoice_failed(self, failed: InvoiceFailed) -> None:
        """A payment failed: a new invoice joins, or the same one failed again."""
        self._inbox.append(failed)

    @workflow.signal
    def invoice_closed(self, closed: InvoiceClosed) -> None:
        """An invoice was paid, voided or marked uncollectible."""
        self._inbox.append(closed)

    @workflow.signal
    def card_changed(self, card: CardChanged) -> None:
        """A payment method was added or made the default (engine mode: see _on_card_changed)."""
        self._inbox.append(card)

    @workflow.signal
    def subscription_ended(self, ended: SubscriptionEnded) -> None:
        """Stripe itself ended the subscription (canceled, or unpaid): see _on_subscription_ended."""
        self._inbox.append(ended)

    @workflow.update
    async def extend_grace(self, req: ExtendGrace) -> CampaignStatus:
        """Move the suspension and the end action ``days`` later (ops, for a customer who
        promised to pay). A suspension already in force is lifted if its new day is ahead."""
        answers_end = workflow.patched(patches.DUNNING_HANDLERS_ANSWER_THE_END)
        schedule = self._schedule
        schedule.extension_days += req.days
        self._wake = True
        await self._effects.record("grace_extended", f"grace-extended:{len(schedule.entered)}:{schedule.extension_days}",
                                   {"days": req.days, "reason": req.reason, "total_days": schedule.extension_days})
        # a payment that ends the dunning meanwhile never saves the moved times: it answers
        await workflow.wait_condition(lambda: not self._wake or (answers_end and self._finished))
        return self.status()

    @extend_grace.validator
    def _validate_extend_grace(self, req: ExtendGrace) -> None:
        if req.days <= 0:
            raise ApplicationError(f"days: expected a positive number of days, got {req.days}")
        if not req.reason.strip():
            raise ApplicationError("reason: required (it goes to the customer's timeline)")
        if self._finished or self._schedule.end_taken is not None:
            raise ApplicationError(f"dunning is over ({self._state}): there is no grace to extend")

    @workflow.update
    async def retry_now(self, req: RetryNow) -> str:
        """Charge the open invoices now (retry mode engine); answers the outcome."""
        answers_end = workflow.patched(patches.DUNNING_HANDLERS_ANSWER_THE_END)
        self._retry_requests.append(req.reason)
        wanted = self._retries_carried_out + len(self._retry_requests)
        await workflow.wait_condition(
            lambda: self._retries_carried_out >= wanted or (answers_end and self._finished)
        )
        if self._retries_carried_out < wanted:  # a payment (or the end action) ended it first
            return f"already {self._state}: nothing charged"
        return self._last_retry

    @retry_now.validator
    def _validate_retry_now(self, req: RetryNow) -> None:
        mode = self._setup.retry_mode if self._setup else None
        if mode != ENGINE:
            raise ApplicationError(
                f"retry mode is {mode or 'not known yet'}: Stripe retries, the engine never charges"
            )
        if self._finished:
            raise ApplicationError(f"dunning is over ({self._state}): nothing to retry")
        if not self._retryable():
            raise ApplicationError(
                "no invoice can be retried: a hard decline or 3-D Secure waits for the customer"
            )

    @workflow.query
    def status(self) -> CampaignStatus:
        step, at = self._next_step()
        return CampaignStatus(CAMPAIGN, step, at, list(self._schedule.entered))

    @workflow.query
    def details(self) -> DunningSnapshot:
        return self._snapshot()

    @workflow.query(name=WAITING_QUERY)
    def waiting(self) -> CampaignWaiting:
        """Why-waiting (the ops protocol's query; dunning carries billing, so it takes no
        pause and no skip-step): the timer until its next step or retry, or the payment it
        waits for. A query only: nothing here issues a command."""
        step, at = self._next_step()
        if self._finished:
            wait = Waiting(WAIT_NOTHING, detail=f"finished: {self._state}")
        elif self._setup is None:
            wait = Waiting(WAIT_ACTIVITY, detail="begin")
        elif step is None:
            wait = Waiting(WAIT_SIGNAL, detail="a payment, a void or an ops action (the end action left it unpaid)")
        elif at is not None and at > workflow.now():
            wait = Waiting(WAIT_TIMER, until=at, detail=f"{step}, unless a payment arrives first")
        else:
            wait = Waiting(WAIT_ACTIVITY, detail=step)
        return CampaignWaiting(
            campaign=CAMPAIGN,
            workflow_id=workflow.info().workflow_id,
            step=step,
            waiting=wait,
            next_step=step,
            next_step_at=at,
            paused=False,
            marketing=False,
            skippable=False,
            done_steps=list(self._schedule.entered) + [f"retry_{n}" for n in self._schedule.retried],
        )

    # --- the process --------------------------------------------------------------------

    @workflow.run
    async def run(self, input: DunningInput) -> str:
        self._reports.begin()
        ended = await self._run(input)
        await self._reports.delivered()
        return ended

    async def _run(self, input: DunningInput) -> str:
        self._effects.begin()  # keys carry the run (patches.DUNNING_KEYS_BY_RUN)
        self._started_at = self._since = workflow.now()
        setup = self._setup = await workflow.execute_activity_method(
            DunningActivities.begin, input, start_to_close_timeout=STORE_TIMEOUT, retry_policy=STORE_RETRY
        )
        self._schedule.begin(setup, self._started_at)
        if setup.retry_mode == STRIPE:
            self._schedule.stripe_waits = workflow.patched(patches.DUNNING_STRIPE_WAITS)
        first = input.first_invoice
        if setup.first_invoice_status in ("paid", "void", "uncollectible"):
            # a failure heard after its invoice was settled: nothing to recover
            await self._effects.record("not_needed", "not-needed", {"invoice": first.invoice_id,
                                                                   "invoice_status": setup.first_invoice_status})
            await report_finished(input.customer_id, CAMPAIGN, CLOSED)
            return CLOSED
        self._inbox.insert(0, InvoiceFailed(input.cause or "start", first,
                                            requires_action=first.requires_action))
        while True:
            await self._drain()
            if not self._open():
                return await self._end_recovered()
            if self._retry_requests:
                await self._retry(None)
                continue
            due = self._schedule.due(self._open(), workflow.now())
            if due is None:  # end action "unpaid": wait to be paid, voided, or told
                self._wake = False
                self._reports.report(WAIT_SIGNAL, None)
                await workflow.wait_condition(lambda: bool(self._inbox) or bool(self._retry_requests))
                continue
            at, kind, ref = due
            if at <= workflow.now():
                if kind == RETRY:
                    await self._retry(ref)
                elif kind == STAGE:
                    await self._enter(self._policy.stages[ref])
                else:
                    await self._end_action(self._schedule.stripe_ended)
                    if self._finished:
                        await workflow.wait_condition(workflow.all_handlers_finished)
                        return self._state
                continue
            if self._wake:  # extend_grace moved the times: save them, then answer it
                self._lift_if_moved()
                await self._effects.save(self._snapshot())
                self._wake = False
                continue
            self._reports.report(WAIT_TIMER, at)
            try:
                await workflow.wait_condition(
                    lambda: bool(self._inbox) or self._wake or bool(self._retry_requests),
                    timeout=at - workflow.now(),
                )
            except TimeoutError:
                pass

    # --- schedule: workflows/dunning/schedule.py ----------------------------------------

    def _lift_if_moved(self) -> None:
        """After an extension, a suspending stage whose new day is ahead is left again."""
        now = workflow.now()
        current = self._schedule.leave_moved(now)
        self._suspended = current is not None and current.suspend
        if current is not None and self._state != current.name:
            self._state, self._since = current.name, now

    # --- handling what arrived ----------------------------------------------------------

    async def _drain(self) -> None:
        while self._inbox:
            msg = self._inbox.pop(0)
            if isinstance(msg, InvoiceFailed):
                await self._on_failed(msg)
            elif isinstance(msg, CardChanged):
                await self._on_card_changed(msg)
            elif isinstance(msg, SubscriptionEnded):
                await self._on_subscription_ended(msg)
            else:
                await self._on_closed(msg)

    async def _on_failed(self, msg: InvoiceFailed) -> None:
        new = msg.invoice
        known = self._invoices.get(new.invoice_id)
        if known is not None and not known.is_open:
            return  # paid or voided already: an old failure arriving late changes nothing
        if known is not None and new.attempt_count and new.attempt_count < known.attempt_count:
            return  # an older failure than the one we have (events out of order)
        inv = known or new
        if known is not None:
            known.attempt_count = max(known.attempt_count, new.attempt_count)
            known.decline_code = new.decline_code or known.decline_code
            known.next_payment_attempt = new.next_payment_attempt
            known.amount_due_cents = new.amount_due_cents or known.amount_due_cents
            known.action_url = new.action_url or known.action_url
            known.requires_action = known.requires_action or msg.requires_action
        else:
            inv.failed_at = inv.failed_at or workflow.now()
            inv.requires_action = inv.requires_action or msg.requires_action
            self._invoices[inv.invoice_id] = inv
        was_hard = known is not None and known.hard_decline
        inv.hard_decline = inv.hard_decline or (inv.decline_code or "") in self._policy.hard_declines
        if self._setup is not None and self._setup.retry_mode == STRIPE:
            inv.stripe_gave_up = inv.attempt_count > 0 and new.next_payment_attempt is None
        await self._effects.record("invoice_failed", f"failed:{inv.invoice_id}:{inv.attempt_count}:{msg.event_id}", {
            "invoice": inv.invoice_id, "amount_cents": inv.amount_due_cents, "decline_code": inv.decline_code,
            "hard_decline": inv.hard_decline, "requires_action": msg.requires_action,
            "attempt_count": inv.attempt_count, "joined": known is None and len(self._invoices) > 1,
        })
        await self._effects.save(self._snapshot())
        if msg.requires_action:
            await self._effects.notice(self._policy.notices.action_required, inv, {"action_url": inv.action_url})
        elif inv.hard_decline and not was_hard and self._schedule.entered:  # (the warning says it first)
            await self._effects.notice(self._policy.notices.card_update, inv, {"decline_code": inv.decline_code})

    async def _on_closed(self, msg: InvoiceClosed) -> None:
        inv = self._invoices.get(msg.invoice_id)
        if inv is None or not inv.is_open:
            return  # not ours, or already closed (our own retry paid it before the webhook came)
        how = msg.how
        if how == BY_CUSTOMER:
            assert self._setup is not None
            how = BY_STRIPE if self._setup.retry_mode == STRIPE else BY_CARD_UPDATE
        self._close(inv, msg.status, how)
        await self._effects.record("invoice_closed", f"closed:{inv.invoice_id}", {
            "invoice": inv.invoice_id, "status": msg.status, "how": how,
            **({"actor": msg.actor, "reason": msg.reason} if msg.actor else {}),
        })
        await self._effects.save(self._snapshot())

    async def _on_subscription_ended(self, msg: SubscriptionEnded) -> None:
        """Stripe ended the subscription itself (its "if all retries fail" setting, the
        dashboard): the dunning ends as Stripe did (the schedule's end, taken by the loop):
        canceled at once (nothing to cancel: no call of ours), unpaid once the grace is over
        (suspended, waiting to be paid); never after the end."""
        if self._finished or msg.status not in (CANCELED, UNPAID) or not self._open():
            return
        if msg.status == UNPAID and self._schedule.end_taken is not None:
            return  # unpaid already (ours or Stripe's), or an end action taken
        if workflow.patched(patches.DUNNING_ENDS_WITH_THE_SUBSCRIPTION):
            self._schedule.stripe_ended = msg.status

    # --- steps --------------------------------------------------------------------------

    async def _enter(self, stage: DunningStage) -> None:
        previous, was_suspended = self._state, self._suspended
        self._schedule.entered.append(stage.name)
        self._state, self._since = stage.name, workflow.now()
        self._suspended = stage.suspend
        await self._effects.save(self._snapshot())
        await self._effects.record("dunning_stage", f"stage:{stage.name}:{self._schedule.extension_days}", {
            "from": previous, "to": stage.name, "suspended": stage.suspend,
            "days": self._days(), "open_invoices": [i.invoice_id for i in self._open()],
        })
        workflow.upsert_search_attributes([DUNNING_STATE.value_set(stage.name)])
        await self._announce(was_suspended, f"stage:{stage.name}:{self._schedule.extension_days}")
        if stage.email is not None:
            await self._effects.email(stage.email, self._context(), key=f"{self._effects.base}/{stage.name}")
