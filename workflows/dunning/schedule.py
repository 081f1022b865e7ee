"""The dunning's schedule, as DunningWorkflow owns it: a plain object that says what is due when.

Everything is keyed on days since the dunning began (the first failure), from the
``[dunning]`` policy of its setup: each stage on its ``day``, the engine's retries on
``retry_days`` (retry mode ``engine``, while an invoice can be retried), the end action on
``end_day``. Grace granted by ``extend_grace`` moves the suspension, every stage from its
day on, and the end; the stages before it and the retries stay. The schedule keeps what
was taken (stages entered, retries done, the end action) and so names the next step.

It issues no command and reads no clock: the workflow hands it ``workflow.now()`` and its
open invoices, takes the step it names, and marks it taken here. The same history gives
the same answers on replay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from lifecycle.contracts.dunning import ENGINE, STRIPE, DunningInvoice, DunningSetup
    from lifecycle.contracts.policy import DunningPolicy, DunningStage

# due steps at the same instant: a retry first (it may make the stage pointless), the end last
RETRY, STAGE, END = 0, 1, 2


def retryable(open_invoices: list[DunningInvoice]) -> list[DunningInvoice]:
    """The open invoices a retry may charge: a hard decline or 3-D Secure waits for the customer."""
    return [i for i in open_invoices if not i.hard_decline and not i.requires_action]


@dataclass
class DunningSchedule:
    """What is due when. ``setup`` and ``started_at`` are known once the dunning began
    (:meth:`begin`); what was taken and the grace granted may come before."""

    entered: list[str] = field(default_factory=list)  # stages entered (a stage un-entered by extend_grace leaves)
    retried: list[int] = field(default_factory=list)  # retry numbers done (1-based)
    extension_days: float = 0.0
    end_taken: str | None = None  # the end action, once taken
    setup: DunningSetup | None = None
    started_at: datetime | None = None
    # retry mode stripe (patches.DUNNING_STRIPE_WAITS): a failure without a next attempt
    # waits for the end day instead of bringing the end at once
    stripe_waits: bool = False
    # Stripe ended the subscription itself (patches.DUNNING_ENDS_WITH_THE_SUBSCRIPTION):
    # canceled | unpaid, the end then (canceled: at once; unpaid: once the grace is over)
    stripe_ended: str | None = None
    # a retry whose Stripe calls all failed (patches.DUNNING_OUTAGE_KEEPS_RETRY): not taken,
    # due again at this time; how many times it ran so (its keys' ``again_{k}``)
    deferred: dict[int, datetime] = field(default_factory=dict)
    reruns: dict[int, int] = field(default_factory=dict)

    def begin(self, setup: DunningSetup, started_at: datetime) -> None:
        self.setup, self.started_at = setup, started_at

    @property
    def policy(self) -> DunningPolicy:
        assert self.setup is not None
        return self.setup.policy

    def _at(self, day: float) -> datetime:
        assert self.started_at is not None and self.setup is not None
        return self.started_at + timedelta(seconds=day * self.setup.day_seconds)

    def days(self, now: datetime) -> float:
        """Days since the dunning began (two decimals)."""
        assert self.started_at is not None and self.setup is not None
        return round((now - self.started_at).total_seconds() / self.setup.day_seconds, 2)

    def _shift(self, day: float) -> float:
        """Suspension and everything after it move by the granted extension."""
        first = self.policy.suspend_day
        return self.extension_days if first is not None and day >= first else 0.0

    def stage_at(self, stage: DunningStage) -> datetime:
        return self._at(stage.day + self._shift(stage.day))

    def end_at(self) -> datetime:
        return self._at(self.policy.end_day + self.extension_days)

    def due(self, open_invoices: list[DunningInvoice], now: datetime) -> tuple[datetime, int, Any] | None:
        """The next scheduled step: (when, kind, which)."""
        if self.end_taken is not None:
            if self.stripe_ended == "canceled" and self.end_taken != "cancel":
                return now, END, None  # unpaid, then canceled by Stripe: the end again
            return None
        candidates: list[tuple[datetime, int, Any]] = []
        if self.setup is not None and self.setup.retry_mode == ENGINE and retryable(open_invoices):
            for n, day in enumerate(self.policy.retry_days, start=1):
                if n not in self.retried:
                    candidates.append((self._retry_at(n, day), RETRY, n))
                    break
        for i, stage in enumerate(self.policy.stages):
            if stage.name not in self.entered:
                candidates.append((self.stage_at(stage), STAGE, i))
                break
        end = self.end_at()
        if self.setup is not None and self.setup.retry_mode == STRIPE and not self.stripe_waits and all(
            inv.stripe_gave_up for inv in open_invoices
        ):
            end = now  # Stripe has given up on every open invoice: the end now
        if self.stripe_ended == "canceled":
            end = now
        elif self.stripe_ended is not None:  # unpaid: once the grace is over
            suspend = next((s for s in self.policy.stages if s.suspend), None)
            end = max(now, self.stage_at(suspend)) if suspend is not None else now
        candidates.append((end, END, None))
        return min(candidates, key=lambda c: (c[0], c[1]))

    def next_retry_at(self, open_invoices: list[DunningInvoice]) -> datetime | None:
        if self.setup is None or self.end_taken is not None:
            return None
        if self.setup.retry_mode == STRIPE:
            times = [i.next_payment_attempt for i in open_invoices if i.next_payment_attempt]
            return min(times) if times else None
        if not retryable(open_invoices):
            return None
        for n, day in enumerate(self.policy.retry_days, start=1):
            if n not in self.retried:
                return self._retry_at(n, day)
        return None

    def _retry_at(self, n: int, day: float) -> datetime:
        at = self._at(day)
        again = self.deferred.get(n)
        return max(at, again) if again is not None else at

    def defer_retry(self, n: int, now: datetime) -> None:
        """Retry ``n`` reached no Stripe answer: not taken, due again a tenth of a day later."""
        assert self.setup is not None
        if n in self.retried:
            self.retried.remove(n)
        self.reruns[n] = self.reruns.get(n, 0) + 1
        self.deferred[n] = now + timedelta(seconds=self.setup.day_seconds / 10)

    def next_step(
        self, open_invoices: list[DunningInvoice], now: datetime
    ) -> tuple[str | None, datetime | None]:
        """The next step's name (``retry_2``, a stage, ``end:cancel``) and when it is due."""
        if self.setup is None:
            return None, None
        due = self.due(open_invoices, now)
        if due is None:
            return None, None
        at, kind, ref = due
        if kind == RETRY:
            return f"retry_{ref}", at
        if kind == STAGE:
            return self.policy.stages[ref].name, at
        return f"end:{self.policy.end_action}", at

    def leave_moved(self, now: datetime) -> DunningStage | None:
        """After an extension, a suspending stage whose new day is ahead is left again;
        answers the stage in force then (None: none entered)."""
        for stage in self.policy.stages:
            if stage.name in self.entered and stage.suspend and self.stage_at(stage) > now:
                self.entered.remove(stage.name)
        current = [s for s in self.policy.stages if s.name in self.entered]
        return current[-1] if current else None
