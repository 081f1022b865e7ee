"""RenewalWorkflow (``customer-{id}/renewal/{YYYYMMDD}``): reminders before an annual renewal.

Started by the customer's entity for an annual subscription's current period end. Each
reminder (policy ``[renewal]``, by default 30 and 7 days before) says what will be
charged (the mirrored amount, after discounts), on which card, and how to change plan.
The entity tells it to ``drop`` when the renewal no longer stands as announced (the
customer canceled or changed plan, or the period moved: a new workflow then starts for
the new date); every reminder still waiting is recorded as skipped with the reason.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.renewal import RenewalActivities
    from lifecycle.contracts.campaigns import CampaignStatus
    from lifecycle.contracts.growth import (
        RENEWAL_CAMPAIGN,
        RenewalInput,
        RenewalTerms,
        RenewalTermsInput,
    )
    from lifecycle.contracts.money import money
    from lifecycle.contracts.policy import EmailStep
    from lifecycle.contracts.tiers import Tiers, tiers_from_catalog
    from workflows import patches
    from workflows.campaign import report_finished
    from workflows.controls import SKIPPED_BY_OPS, ControlledCampaign, Controls
    from workflows.email_step import record_step_skipped, send_step_email
    from workflows.options import STORE_RETRY, STORE_TIMEOUT
    from workflows.timeline import data_error

REMINDED = "reminded"
DROPPED = "dropped"


def renewal_tiers(input: RenewalInput) -> Tiers:
    return input.tiers if input.tiers is not None else tiers_from_catalog()


def reminder_context(
    input: RenewalInput, step: EmailStep, terms: RenewalTerms, *, with_instant: bool = False
) -> dict[str, object]:
    """What the reminder says: the date, the amount (Stripe's preview, else the mirror's
    after discounts; else the tier's annual price), the card (else "your card on file"), the
    plan. ``with_instant``: also the renewal instant, from which the email shows the date in
    the customer's time zone (``date`` stays the UTC one, for a template that uses it alone)."""
    tier = renewal_tiers(input).get(input.plan)  # known: run() skips the reminder otherwise
    cents = terms.amount_cents if terms.amount_cents is not None else tier.period_cents(input.interval, input.interval_count)
    instant = {"at": input.period_end.isoformat()} if with_instant else {}
    return {
        "renewal": {
            **instant,
            "date": f"{input.period_end:%B} {input.period_end.day}, {input.period_end.year}",
            "days_left": int(round(step.days_before_end)),
            "amount": money(cents, terms.currency),
            "card": terms.card or "your card on file",
            "card_known": terms.card is not None,
            "plan_code": tier.code,
            "plan_name": tier.name,
            "interval": input.interval,
        }
    }


@workflow.defn
class RenewalWorkflow(ControlledCampaign):
    @workflow.init
    def __init__(self, input: RenewalInput) -> None:
        self.controls = Controls(RENEWAL_CAMPAIGN)
        self._input = input
        self._dropped: str | None = None
        self._done: list[str] = []
        self._next: tuple[str, object] | None = None

    @workflow.signal
    def drop(self, reason: str) -> None:
        """The renewal no longer stands as the reminders would say (canceled, plan changed, moved)."""
        if self._dropped is None:
            self._dropped = reason

    @workflow.query
    def status(self) -> CampaignStatus:
        name, at = self._next if self._next else (None, None)
        return CampaignStatus(RENEWAL_CAMPAIGN, name, at, list(self._done))  # type: ignore[arg-type]  # at: None once finished

    @workflow.run
    async def run(self, input: RenewalInput) -> str:
        controls = self.controls
        controls.begin()
        campaign = RENEWAL_CAMPAIGN
        reminders = sorted(input.reminders, key=lambda r: -r.days_before_end)
        for i, reminder in enumerate(reminders):
            at = input.period_end - timedelta(seconds=reminder.days_before_end * input.day_seconds)
            if at < workflow.now():  # the period ends sooner than this reminder's lead time
                await record_step_skipped(
                    input.customer_id, campaign, reminder, "its time had passed when these reminders started"
                )
                self._done.append(reminder.name)
                continue
            self._next = (reminder.name, at)
            if controls.enabled:
                after = reminders[i + 1] if i + 1 < len(reminders) else None
                due = await controls.wait_for_step(
                    reminder.name, at, marketing=reminder.category == "marketing",
                    next_step=after.name if after else None,
                    next_step_at=(
                        input.period_end - timedelta(seconds=after.days_before_end * input.day_seconds)
                        if after else None
                    ),
                    stop=lambda: self._dropped is not None,
                )
                if self._dropped is not None:
                    break
                if not due:
                    await record_step_skipped(input.customer_id, campaign, reminder, SKIPPED_BY_OPS)
                    self._done.append(reminder.name)
                    controls.step_done(reminder.name)
                    continue
            else:
                try:
                    await workflow.wait_condition(lambda: self._dropped is not None, timeout=at - workflow.now())
                except TimeoutError:
                    pass
                if self._dropped is not None:
                    break
            tiers = renewal_tiers(input)
            if tiers.find(input.plan) is None:  # a plan the snapshot lacks: no reminder to write
                error = tiers.unknown(input.plan)
                await data_error(input.customer_id, error, key=f"{workflow.info().workflow_id}:{reminder.name}",
                                 campaign=campaign, unknown="plan", value=input.plan, skipped=reminder.name)
                await record_step_skipped(input.customer_id, campaign, reminder, error)
                self._done.append(reminder.name)
                controls.step_done(reminder.name)
                continue
            terms: RenewalTerms = await workflow.execute_activity_method(
                RenewalActivities.renewal_terms,
                RenewalTermsInput(input.customer_id, input.stripe_subscription_id),
                start_to_close_timeout=STORE_TIMEOUT,
                retry_policy=STORE_RETRY,
            )
            await send_step_email(
                input.customer_id,
                campaign,
                reminder,
                reminder_context(input, reminder, terms,
                                 with_instant=workflow.patched(patches.RENEWAL_DATE_IN_CUSTOMER_ZONE)),
                stop=lambda: self._dropped is not None,
                stop_reason="the renewal changed while the reminder waited to go out",
                controls=controls,
            )
            self._done.append(reminder.name)
            controls.step_done(reminder.name)
        self._next = None
        await controls.finished(end_reported=True)
        outcome = REMINDED
        if self._dropped is not None:
            outcome = DROPPED
            for reminder in reminders:
                if reminder.name not in self._done:
                    await record_step_skipped(input.customer_id, campaign, reminder, self._dropped)
                    self._done.append(reminder.name)
        await report_finished(input.customer_id, f"{campaign}/{input.period_end:%Y%m%d}", outcome)
        return outcome
