"""CardExpiryWorkflow (``customer-{id}/card-expiry/{yyyy-mm}``): pre-dunning reminders.

The entity starts one when it hears of a default card (``billing.default_card``): an email
``days_before_end`` days before the card stops working (the end of its expiry month), by
default 30 and 7, each with the card-update link. A card replaced in between (another
expiry month, or no default card) gets the ``card_replaced`` signal: the reminders still
pending are dropped and the workflow ends; the entity starts the new card's own. Another
card with the same expiry month just takes the old one's place (``card_changed``).

A reminder whose time has already passed when the card is added (a card that expires in
ten days gets no "30 days" email) is recorded as skipped, with the reason. The email's
idempotency key names the card, so the same card's reminder never goes out twice, even
from a second run of this workflow id.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from lifecycle.contracts.campaigns import CampaignStatus
    from lifecycle.contracts.cards import CARD_EXPIRY_CAMPAIGN, CardExpiryInput, CardOnFile
    from lifecycle.contracts.policy import EmailStep
    from workflows.controls import SKIPPED_BY_OPS, ControlledCampaign, Controls
    from workflows.email_step import record_step_skipped, send_step_email

REMINDED = "reminded"
REPLACED = "replaced"


@workflow.defn
class CardExpiryWorkflow(ControlledCampaign):
    @workflow.init
    def __init__(self, input: CardExpiryInput) -> None:
        self.controls = Controls(CARD_EXPIRY_CAMPAIGN)
        self._card = input.card
        self._replaced = False
        self._done: list[str] = []
        self._next: tuple[str, datetime] | None = None

    @workflow.signal
    def card_replaced(self) -> None:
        """The default card changed to one with another expiry (or none): no more reminders."""
        self._replaced = True

    @workflow.signal
    def card_changed(self, card: CardOnFile) -> None:
        """Another card with the same expiry month: the reminders name it instead (and a
        replacement heard just before is undone: this month's card is back)."""
        self._card = card
        self._replaced = False

    @workflow.query
    def status(self) -> CampaignStatus:
        name, at = self._next if self._next else (None, None)
        return CampaignStatus(CARD_EXPIRY_CAMPAIGN, name, at, list(self._done))

    @workflow.run
    async def run(self, input: CardExpiryInput) -> str:
        controls = self.controls
        controls.begin()
        reminders = sorted(input.reminders, key=lambda r: -r.days_before_end)
        for i, reminder in enumerate(reminders):
            at = input.expires_at - timedelta(seconds=reminder.days_before_end * input.day_seconds)
            self._next = (reminder.name, at)
            if at < workflow.now():
                await record_step_skipped(
                    input.customer_id, CARD_EXPIRY_CAMPAIGN, reminder,
                    f"the card was set less than {reminder.days_before_end:g} days before it expires",
                )
                self._done.append(reminder.name)
                continue
            if controls.enabled:  # transactional: never held by a pause; ops may skip it
                after = reminders[i + 1] if i + 1 < len(reminders) else None
                due = await controls.wait_for_step(
                    reminder.name, at, marketing=False,
                    next_step=after.name if after else None,
                    next_step_at=(
                        input.expires_at - timedelta(seconds=after.days_before_end * input.day_seconds)
                        if after else None
                    ),
                    stop=lambda: self._replaced,
                )
                if self._replaced:
                    break
                if not due:
                    await record_step_skipped(input.customer_id, CARD_EXPIRY_CAMPAIGN, reminder, SKIPPED_BY_OPS)
                    self._done.append(reminder.name)
                    controls.step_done(reminder.name)
                    continue
            else:
                try:
                    await workflow.wait_condition(lambda: self._replaced, timeout=at - workflow.now())
                except TimeoutError:
                    pass
                if self._replaced:
                    break
            await self._remind(input, reminder)
            self._done.append(reminder.name)
            controls.step_done(reminder.name)
        self._next = None
        await controls.finished()
        return REPLACED if self._replaced else REMINDED

    async def _remind(self, input: CardExpiryInput, reminder: EmailStep) -> None:
        card = self._card
        await send_step_email(
            input.customer_id,
            CARD_EXPIRY_CAMPAIGN,
            reminder,
            {
                "days_left": int(round(reminder.days_before_end)),
                "card_brand": card.brand,
                "card_last4": card.last4,
                "card_expires": f"{card.exp_month:02d}/{card.exp_year}",
            },
            key=f"{workflow.info().workflow_id}/{card.payment_method_id}/{reminder.name}",
            stop=lambda: self._replaced,
            stop_reason="the card was replaced while the reminder waited",
            controls=self.controls,
        )
