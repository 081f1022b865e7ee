"""The entity's default card and its expiry reminders (a helper the CustomerWorkflow owns).

The entity hears ``billing.default_card`` whenever Stripe (``payment_method.attached`` /
``.updated`` / ``.detached``, ``customer.updated``) or the card-update page changes the
default card or its expiry. The same card heard again changes nothing; a new card replaces
the pending reminders of the old one (:class:`~workflows.card_expiry.CardExpiryWorkflow`)
and starts its own, ``customer-{id}/card-expiry/{yyyy-mm}``.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import FailureError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from lifecycle.contracts.cards import (
        CARD_EXPIRY_ID_PART,
        CardExpiryInput,
        CardOnFile,
        card_expires_at,
    )
    from lifecycle.contracts.customer import CustomerEvent, CustomerState
    from lifecycle.contracts.events import DefaultCard, payload_of
    from lifecycle.contracts.ids import campaign_workflow_id
    from lifecycle.contracts.policy import CampaignPolicy
    from lifecycle.contracts.search_attributes import customer_search_attributes
    from workflows import patches
    from workflows.card_expiry import CardExpiryWorkflow


def _card(payload: DefaultCard) -> CardOnFile | None:
    if not payload.payment_method_id or not 1 <= payload.exp_month <= 12 or payload.exp_year < 1:
        return None  # no default card (or one without an expiry: nothing to remind of)
    return CardOnFile(
        payment_method_id=payload.payment_method_id,
        brand=payload.brand,
        last4=payload.last4,
        exp_month=payload.exp_month,
        exp_year=payload.exp_year,
    )


class CardReminders:
    def __init__(self, state: CustomerState, policy: CampaignPolicy) -> None:
        self._state = state
        self._policy = policy

    async def on_default_card(self, event: CustomerEvent) -> None:
        if not workflow.patched(patches.CARD_EXPIRY_REMINDERS):
            return  # before: the kind was unknown to the entity (logged and ignored)
        new = _card(payload_of(event, DefaultCard))
        old = self._state.card
        if new is not None and new.same_card(old):
            return  # heard again (webhook and page, a redelivery)
        if old is not None and old.reminders_workflow_id:
            if new is not None and new.expiry_month == old.expiry_month:
                new.reminders_workflow_id = old.reminders_workflow_id
                self._state.card = new
                await self._signal(old.reminders_workflow_id, CardExpiryWorkflow.card_changed, new)
                return
            await self._signal(old.reminders_workflow_id, CardExpiryWorkflow.card_replaced)
        self._state.card = new
        if new is not None:
            await self._start(new)

    async def _start(self, card: CardOnFile) -> None:
        state, policy = self._state, self._policy.card_expiry
        if state.stage in policy.skip_stages:
            workflow.logger.info("no card-expiry reminders for a %s customer", state.stage)
            return
        expires_at = card_expires_at(card.exp_month, card.exp_year)
        if expires_at <= workflow.now():
            return  # already expired: a charge will fail, and dunning takes over
        child_id = campaign_workflow_id(state.customer_id, CARD_EXPIRY_ID_PART, card.expiry_month)
        try:
            await workflow.start_child_workflow(
                CardExpiryWorkflow.run,
                CardExpiryInput(
                    customer_id=state.customer_id,
                    card=card,
                    expires_at=expires_at,
                    reminders=policy.reminders,
                    day_seconds=self._policy.day_seconds,
                ),
                id=child_id,
                parent_close_policy=ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                search_attributes=customer_search_attributes(state.customer_id, state.plan, state.stage),
            )
        except WorkflowAlreadyStartedError:  # a replaced run of this month has not ended yet
            await self._signal(child_id, CardExpiryWorkflow.card_changed, card)
        card.reminders_workflow_id = child_id

    @staticmethod
    async def _signal(child_id: str, signal: object, *args: object) -> None:
        try:
            await workflow.get_external_workflow_handle(child_id).signal(signal, *args)  # type: ignore[call-overload]  # one call for both signals
        except FailureError as err:  # ended already (its reminders are all sent)
            workflow.logger.info("card reminders %s not signalled (%s)", child_id, err)
