"""The dunning's charges: a retry of the schedule, one that ops asked for, a new card.

Each invoice's charge and its outcome go under their own key (``…/retry/2/in_…``), so a
worker crash never charges twice; the outcome moves the invoice (paid, needs 3-D Secure,
declined: hard or not) and the schedule (an outage keeps the retry's number).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.stripe import StripeActivities
    from lifecycle.contracts.billing import (
        CARD_HARD_DECLINED,
        NOT_CHARGED_CARD,
        RetryInvoiceInput,
        RetryInvoiceResult,
    )
    from lifecycle.contracts.dunning import (
        BY_CARD_UPDATE,
        ENGINE,
        PAID,
        CardChanged,
    )
    from workflows import patches
    from workflows.dunning.state import DunningRun, _message
    from workflows.options import (
        STRIPE_RETRY,
        STRIPE_TIMEOUT,
    )


class DunningRetries(DunningRun):
    """The retry step of DunningWorkflow, and the retry a new card asks for."""

    # --- a new card (patches.DUNNING_NEW_CARD_RETRY) ------------------------------------

    async def _on_card_changed(self, msg: CardChanged) -> None:
        """Retry mode engine: every open invoice is retried at once with the new card, once
        per card (the same card heard again through another event charges nothing); the
        outcome is a retry's: paid (recovered), or declined (the next step). A card that is
        not the one an invoice is charged with (attached, not the default) changes nothing."""
        assert self._setup is not None
        card = msg.payment_method_id
        if self._setup.retry_mode != ENGINE or card in self._cards_retried or not self._open():
            return
        if workflow.patched(patches.DUNNING_NEW_CARD_RETRY):
            await self._retry(None, card=card)

    async def _retry(self, n: int | None, card: str | None = None) -> None:
        """Retry ``n`` of the schedule, or (None) one that ops asked for, or (``card``) every
        open invoice with a new card; each invoice's charge and outcome under its own key,
        recorded once."""
        manual = n is None and card is None
        step = None  # the key's step, when it is not the label
        if card is not None:
            reason, label, step = f"new card {card}", BY_CARD_UPDATE, f"{BY_CARD_UPDATE}/{card}"
            if again := self._cards_skipped.get(card):  # heard before, charged nothing (hard declined)
                step = f"{step}/again_{again}"
        elif manual:
            reason = self._retry_requests.pop(0)
            label = f"manual_{self._retries_carried_out + 1}"
        else:
            assert n is not None
            self._schedule.retried.append(n)
            reason, label = "", f"retry_{n}"
            if again := self._schedule.reruns.get(n):  # after an outage (DUNNING_OUTAGE_KEEPS_RETRY)
                step = f"{label}/again_{again}"
        step = step or label
        outcomes = []
        answered = unanswered = 0  # Stripe's answers, and calls that failed (an outage)
        skipped = False  # a new card's retry that charged nothing: its last attempt hard-declined
        for inv in self._open() if card else self._retryable():  # a new card: hard declines too
            key = f"{self._effects.base}/{step}/{inv.invoice_id}"
            result: RetryInvoiceResult | None
            try:
                result = await workflow.execute_activity_method(
                    StripeActivities.retry_invoice,
                    RetryInvoiceInput(self._input.customer_id, inv.invoice_id, key, payment_method_id=card),
                    start_to_close_timeout=STRIPE_TIMEOUT,
                    retry_policy=STRIPE_RETRY,
                )
                outcome = result.outcome
            except ActivityError as err:
                result, outcome = None, f"error: {_message(err)}"
            answered, unanswered = (answered + 1, unanswered) if result else (answered, unanswered + 1)
            if outcome == NOT_CHARGED_CARD:
                continue  # the new card is not what this invoice is charged with: nothing happened
            outcomes.append(f"{inv.invoice_id}: {outcome}")
            await self._effects.record("dunning_retry", f"{step}/{inv.invoice_id}", {
                "retry": label, "invoice": inv.invoice_id, "outcome": outcome,
                "decline_code": result.failure_code if result else None,
                **({"reason": reason} if manual or card else {}),
            })
            if result is None:
                continue
            if card is not None and result.outcome == CARD_HARD_DECLINED and (
                workflow.patched(patches.DUNNING_CARD_HARD_DECLINED_NOT_COUNTED)
            ):
                skipped = True  # nothing charged: not a retry of this card, nor an attempt
                continue
            if card is not None:  # charged with the new card: judged again on its outcome
                if card not in self._cards_retried:
                    self._cards_retried.append(card)
                inv.hard_decline = inv.requires_action = False
            if result.outcome == PAID:
                self._close(inv, PAID, label if result.charged else BY_CARD_UPDATE)
            elif result.outcome == "not_payable":
                self._close(inv, result.invoice_status if result.invoice_status != "void" else "voided",
                            result.invoice_status)
            elif result.outcome == "requires_action":
                inv.requires_action = True
                inv.action_url = result.hosted_invoice_url or inv.action_url
                await self._effects.notice(self._policy.notices.action_required, inv,
                                           {"action_url": inv.action_url})
            else:  # declined, no_payment_method
                inv.attempt_count += 1
                inv.decline_code = result.failure_code or inv.decline_code
                hard = result.outcome == "no_payment_method" or (
                    (inv.decline_code or "") in self._policy.hard_declines
                )
                if hard and not inv.hard_decline:
                    inv.hard_decline = True
                    await self._effects.notice(self._policy.notices.card_update, inv,
                                               {"decline_code": inv.decline_code or result.outcome})
        if skipped and card is not None and card not in self._cards_retried:
            self._cards_skipped[card] = self._cards_skipped.get(card, 0) + 1  # heard again: retried
        if n is not None and unanswered and not answered and workflow.patched(patches.DUNNING_OUTAGE_KEEPS_RETRY):
            self._schedule.defer_retry(n, workflow.now())  # Stripe never answered: the number is kept
        await self._effects.save(self._snapshot())
        if manual:
            self._last_retry = "; ".join(outcomes) or "nothing to retry"
            self._retries_carried_out += 1
