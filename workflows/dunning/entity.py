"""The entity's side of dunning: a plain object CustomerWorkflow owns (like Subscription).

It starts ``customer-{id}/dunning/{first-invoice-id}`` on the first failed payment (or on
a subscription turned ``past_due`` without one, from the open invoices the mirror has),
sends every later failure to the running one (one dunning per customer at a time), tells
it when an invoice is paid, voided, marked uncollectible or marked paid by ops and when a
payment method is added or made the default (it may retry with it), and hears
how it ended: recovered or closed -> the stage goes back to active, canceled -> canceled.
While a dunning runs the stage waits for it: an invoice.paid no longer moves the stage
by itself (another invoice may still be open).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import workflow
from temporalio.exceptions import FailureError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.dunning import DunningActivities
    from lifecycle.contracts.customer import CustomerEvent, CustomerState
    from lifecycle.contracts.dunning import (
        BY_CUSTOMER,
        BY_MANUAL,
        BY_UNCOLLECTIBLE,
        BY_VOID,
        CAMPAIGN,
        CANCELED,
        CLOSED,
        LEFT_PAST_DUE,
        PAID,
        RECOVERED,
        UNCOLLECTIBLE,
        VOIDED,
        CardChanged,
        DunningInput,
        DunningInvoice,
        InvoiceClosed,
        InvoiceFailed,
        OpenInvoicesInput,
        SubscriptionEnded,
    )
    from lifecycle.contracts.events import (
        CampaignFinished,
        EventKind,
        InvoiceActionRequired,
        InvoiceFacts,
        InvoiceMarkedPaid,
        InvoicePaid,
        InvoicePaymentFailed,
        InvoiceUncollectible,
        InvoiceVoided,
        PaymentMethodAdded,
        StripeSubscription,
        payload_of,
    )
    from lifecycle.contracts.ids import campaign_workflow_id
    from lifecycle.contracts.search_attributes import customer_search_attributes
    from lifecycle.contracts.stages import ACTIVE, PAST_DUE
    from lifecycle.contracts.stages import CANCELED as STAGE_CANCELED
    from workflows.campaign import finished_workflow_id
    from workflows.dunning import DunningWorkflow
    from workflows.options import STORE_RETRY, STORE_TIMEOUT
    from workflows.subscription import SetStage

CLOSING: dict[str, tuple[type[InvoiceFacts], str, str]] = {
    EventKind.STRIPE_INVOICE_PAID: (InvoicePaid, PAID, BY_CUSTOMER),
    EventKind.INVOICE_MARKED_PAID: (InvoiceMarkedPaid, PAID, BY_MANUAL),
    EventKind.STRIPE_INVOICE_VOIDED: (InvoiceVoided, VOIDED, BY_VOID),
    EventKind.STRIPE_INVOICE_UNCOLLECTIBLE: (InvoiceUncollectible, UNCOLLECTIBLE, BY_UNCOLLECTIBLE),
}


class DunningSide:
    """Starts, feeds and hears the customer's one dunning child."""

    def __init__(self, state: CustomerState, *, set_stage: SetStage) -> None:
        self._state = state
        self._set_stage = set_stage

    @property
    def running(self) -> str | None:
        return self._state.campaigns.get(CAMPAIGN)

    async def on_failed(self, event: CustomerEvent) -> None:
        """invoice.payment_failed / invoice.payment_action_required: start or join."""
        if event.kind == EventKind.STRIPE_INVOICE_ACTION_REQUIRED:
            act = payload_of(event, InvoiceActionRequired)
            if not act.invoice_id:
                return
            inv = DunningInvoice(
                invoice_id=act.invoice_id, amount_due_cents=act.amount_due_cents,
                attempt_count=act.attempt_count, action_url=act.hosted_invoice_url, requires_action=True,
            )
            sub_id = act.stripe_subscription_id
        else:
            failed = payload_of(event, InvoicePaymentFailed)
            if not failed.invoice_id:
                return
            inv = DunningInvoice(
                invoice_id=failed.invoice_id, amount_due_cents=failed.amount_due_cents,
                attempt_count=failed.attempt_count, decline_code=failed.failure_code,
                hard_decline=failed.hard_decline, next_payment_attempt=failed.next_payment_attempt,
            )
            sub_id = failed.stripe_subscription_id
        inv.failed_at = workflow.now()
        await self._start_or_join(InvoiceFailed(event.event_id, inv, inv.requires_action), sub_id)

    async def on_past_due(self, event: CustomerEvent) -> None:
        """The subscription turned past_due and no failure began a dunning: begin one from
        the invoices the mirror has open (none: nothing to collect yet)."""
        if self.running or self._state.outcomes.get(CAMPAIGN) == LEFT_PAST_DUE:
            return  # left past due on purpose: only a new failure begins another
        found: list[DunningInvoice] = await workflow.execute_activity_method(
            DunningActivities.open_invoices,
            OpenInvoicesInput(self._state.customer_id),
            start_to_close_timeout=STORE_TIMEOUT,
            retry_policy=STORE_RETRY,
        )
        for inv in found:
            inv.failed_at = workflow.now()
            await self._start_or_join(
                InvoiceFailed(f"{event.event_id}:{inv.invoice_id}", inv),
                self._state.billing.stripe_subscription_id,
            )

    async def on_closed(self, event: CustomerEvent) -> bool:
        """Tell the running dunning an invoice left; False when none runs (the caller
        then does what it did before dunning existed)."""
        if not self.running:
            return False
        payload_type, status, how = CLOSING[EventKind(event.kind)]
        facts = payload_of(event, payload_type)
        if not facts.invoice_id:
            return True
        actor = reason = None
        if isinstance(facts, InvoiceMarkedPaid):
            actor, reason = facts.actor, facts.reason
        closed = InvoiceClosed(event.event_id, facts.invoice_id, status, how, actor=actor, reason=reason)
        if not await self._signal(DunningWorkflow.invoice_closed, closed):
            return False
        return True

    async def on_card(self, event: CustomerEvent) -> None:
        """A payment method was added or made the default (payment_method_added with a card
        id): the running dunning retries the open invoices with it (engine mode)."""
        card = payload_of(event, PaymentMethodAdded).card
        if card and self.running:
            await self._signal(DunningWorkflow.card_changed, CardChanged(event.event_id, card))

    def ends_subscription(self, event: CustomerEvent) -> bool:
        """A subscription event by which Stripe itself ended it (canceled or unpaid) while a
        dunning runs: the dunning must hear it (:meth:`on_subscription_ended`)."""
        sub = payload_of(event, StripeSubscription)
        return bool(self.running) and sub.status in (CANCELED, "unpaid")

    async def on_subscription_ended(self, event: CustomerEvent) -> None:
        """Stripe canceled the subscription or made it unpaid: the dunning ends as Stripe did."""
        sub = payload_of(event, StripeSubscription)
        assert sub.status is not None
        await self._signal(DunningWorkflow.subscription_ended,
                           SubscriptionEnded(event.event_id, sub.status, sub.stripe_subscription_id))

    async def on_finished(self, event: CustomerEvent) -> None:
        """The dunning ended: the stage follows its outcome."""
        finished = payload_of(event, CampaignFinished)
        child_id = finished_workflow_id(event.event_id, finished.run_id)
        self._state.outcomes[CAMPAIGN] = finished.outcome
        if self.running == child_id:
            self._state.campaigns.pop(CAMPAIGN, None)
        elif self.running is not None:
            return  # an older dunning ended; the one running decides the stage
        if finished.outcome in (RECOVERED, CLOSED) and self._state.stage == PAST_DUE:
            b = self._state.billing
            if b.status in ("past_due", "unpaid", "incomplete"):
                b.status = "active"
            await self._set_stage(ACTIVE, cause=event.event_id, reason=f"dunning {finished.outcome}")
        elif finished.outcome == CANCELED:
            self._state.billing.status = "canceled"
            await self._set_stage(STAGE_CANCELED, cause=event.event_id, reason="dunning ended: canceled")

    # --- helpers ------------------------------------------------------------------------

    async def _signal(self, signal: Callable[..., Any], arg: object) -> bool:
        child_id = self.running
        if not child_id:
            return False
        try:
            await workflow.get_external_workflow_handle(child_id).signal(signal, arg)
            return True
        except FailureError as err:  # it has just ended
            workflow.logger.info("dunning %s not signalled (%s)", child_id, err)
            self._state.campaigns.pop(CAMPAIGN, None)
            return False

    async def _start_or_join(self, failed: InvoiceFailed, stripe_subscription_id: str | None) -> None:
        if await self._signal(DunningWorkflow.invoice_failed, failed):
            return
        cid = self._state.customer_id
        child_id = campaign_workflow_id(cid, CAMPAIGN, failed.invoice.invoice_id)
        try:
            await workflow.start_child_workflow(
                DunningWorkflow.run,
                DunningInput(cid, failed.invoice, stripe_subscription_id, cause=failed.event_id),
                id=child_id,
                parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=customer_search_attributes(cid, self._state.plan, self._state.stage),
            )
            self._state.campaigns[CAMPAIGN] = child_id
        except WorkflowAlreadyStartedError:  # running, though this entity lost track of it
            self._state.campaigns[CAMPAIGN] = child_id
            await self._signal(DunningWorkflow.invoice_failed, failed)
