"""The ops controls every campaign child shares, written once: why-waiting, pause/resume
and skip-step (the protocol is described in ``lifecycle/contracts/ops.py``).

A campaign inherits :class:`ControlledCampaign` (the ``waiting`` query and the ``pause``,
``resume`` and ``skip_step`` signals), builds its :class:`Controls` in ``__init__``, calls
``controls.begin()`` first thing in ``run`` and waits for each step's time with
``controls.wait_for_step``; ``send_step_email(..., controls=...)`` does the rest (quiet
hours, the cap, the activity). So:

- **pause** holds marketing steps only: a step whose time comes while paused waits for
  resume and then goes out, once (its idempotency key is unchanged). Transactional steps
  and billing (the trial's end, a downgrade) go on.
- **skip-step** ends the wait of the named step (timer, pause, quiet hours or cap) and the
  campaign records it as skipped on the timeline.
- **why-waiting**: the ``waiting`` query answers what the campaign is doing now; the
  campaign also upserts ``Campaign`` / ``WaitingFor`` / ``NextStepAt`` on itself and tells
  its entity (the ``campaign_wait`` signal, in order, and ``nothing`` when it finishes), so
  the entity carries ``Waits`` / ``NextStepAt`` and one visibility query lists customers
  by what their campaigns wait for.

All of it is behind ``workflow.patched(patches.CAMPAIGN_CONTROLS)``, decided at the start
of a run: a campaign started before the deploy answers the query but takes no action; the
reports to the entity behind ``patches.CAMPAIGN_REPORTS_WAITS``, decided the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from lifecycle.contracts.ops import (
        CAMPAIGN_WAIT_SIGNAL,
        PAUSE_SIGNAL,
        RESUME_SIGNAL,
        SKIP_STEP_SIGNAL,
        WAIT_ACTIVITY,
        WAIT_NOTHING,
        WAIT_PAUSED,
        WAIT_TIMER,
        WAITING_QUERY,
        CampaignWait,
        CampaignWaiting,
        Waiting,
    )
    from lifecycle.contracts.search_attributes import CAMPAIGN, NEXT_STEP_AT, WAITING_FOR
    from workflows import patches

SKIPPED_BY_OPS = "skipped by ops (see `lifecycle audit`)"


class Controls:
    """What one campaign run knows about its controls and its current wait."""

    def __init__(self, campaign: str) -> None:
        self.campaign = campaign
        self.enabled = False  # decided by begin()
        self.paused = False
        self._skip: set[str] = set()  # steps ops asked to skip
        self.step: str | None = None
        self.waiting = Waiting(WAIT_NOTHING)
        self.marketing = True
        self.skippable = True
        self.next_step: str | None = None
        self.next_step_at: datetime | None = None
        self.done: list[str] = []
        self.skipped: list[str] = []
        self._upserted: tuple[str, datetime | None] | None = None
        self.reports = EntityReports(campaign)

    # --- the run ------------------------------------------------------------------------

    def begin(self) -> None:
        """Decide, once per run, whether the controls act and report (the patches)."""
        self.enabled = workflow.patched(patches.CAMPAIGN_CONTROLS)
        if self.enabled:
            workflow.upsert_search_attributes([CAMPAIGN.value_set(self.campaign)])
            self.reports.begin()

    def on_step(
        self,
        step: str,
        at: datetime | None,
        *,
        marketing: bool,
        skippable: bool = True,
        next_step: str | None = None,
        next_step_at: datetime | None = None,
    ) -> None:
        """The campaign moved to ``step`` (due at ``at``)."""
        self.step, self.marketing, self.skippable = step, marketing, skippable
        self.next_step, self.next_step_at = next_step, next_step_at
        self.wait(Waiting(WAIT_TIMER, until=at) if at else Waiting(WAIT_ACTIVITY))

    def wait(self, waiting: Waiting) -> None:
        """What the campaign waits for now (the query reads it; visibility gets the kind)."""
        self.waiting = waiting
        if not self.enabled or waiting.kind == WAIT_ACTIVITY:
            return  # an activity is short-lived: the query says so, visibility keeps the wait before
        key = (waiting.kind, waiting.until)
        if key == self._upserted:
            return
        self._upserted = key
        workflow.upsert_search_attributes([
            WAITING_FOR.value_set(waiting.kind),
            NEXT_STEP_AT.value_set(waiting.until) if waiting.until else NEXT_STEP_AT.value_unset(),
        ])
        self.reports.report(waiting.kind, waiting.until)

    def step_done(self, step: str) -> None:
        self.done.append(step)

    async def finished(self, *, end_reported: bool = False) -> None:
        """The campaign has no step left; every report is delivered before this returns.
        The entity hears ``nothing``, unless ``end_reported``: the campaign reports its end
        next (``report_finished``), which drops its wait there too (one signal less).

        Visibility gets ``WaitingFor=nothing`` but keeps the last ``NextStepAt`` (the run
        closes next): an unset Datetime attribute comes back from some servers (the
        time-skipping test server) as a null that the client cannot decode, so describing
        the closed run would fail. Still one upsert, as before."""
        self.step = self.next_step = self.next_step_at = None
        self.waiting = Waiting(WAIT_NOTHING)
        if self.enabled and self._upserted != (WAIT_NOTHING, None):
            self._upserted = (WAIT_NOTHING, None)
            workflow.upsert_search_attributes([WAITING_FOR.value_set(WAIT_NOTHING)])
            if not end_reported:
                self.reports.report(WAIT_NOTHING, None)
        await self.reports.delivered()

    def skip_requested(self, step: str | None) -> bool:
        return self.enabled and step is not None and step in self._skip

    def held(self) -> bool:
        """A marketing step may not go out now."""
        return self.enabled and self.paused and self.marketing

    async def wait_for_step(
        self,
        step: str,
        at: datetime,
        *,
        marketing: bool,
        skippable: bool = True,
        next_step: str | None = None,
        next_step_at: datetime | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> bool:
        """Wait until ``step`` is due (and, for a marketing step, not paused). False: ops
        skipped it (the caller records the skip). Without the patch: the durable timer only.

        ``stop``: the campaign's own reason to end (a drop, a reactivation): the wait ends
        when it turns true and returns True; the caller checks its stop next. Without the
        patch the caller waits on its own timer as before (this is not called)."""
        self.on_step(
            step, at, marketing=marketing, skippable=skippable, next_step=next_step, next_step_at=next_step_at
        )
        delay = at - workflow.now()
        if not self.enabled:
            if delay > timedelta(0):
                await workflow.sleep(delay)
            return True
        stopped = stop or (lambda: False)
        if delay > timedelta(0):
            try:
                await workflow.wait_condition(lambda: stopped() or self.skip_requested(step), timeout=delay)
            except TimeoutError:
                pass
        if stopped():
            return True
        return await self.until_unpaused(step, stop=stop)

    async def until_unpaused(self, step: str, *, stop: Callable[[], bool] | None = None) -> bool:
        """Hold a marketing step while paused. False: ops skipped it meanwhile (True too
        when ``stop`` turned true: the caller's own end)."""
        stopped = stop or (lambda: False)
        if self.skip_requested(step):
            return self.take_skip(step)
        if self.held():
            until = self.waiting.until
            self.wait(Waiting(WAIT_PAUSED, until=until, detail="paused by ops: goes out at resume"))
            await workflow.wait_condition(lambda: not self.held() or self.skip_requested(step) or stopped())
            if self.skip_requested(step):
                return self.take_skip(step)
            if stopped():
                return True
        self.wait(Waiting(WAIT_ACTIVITY, detail="send_email"))
        return True

    def take_skip(self, step: str) -> bool:
        """Mark ``step`` skipped (the caller records it on the timeline); always False."""
        self._skip.discard(step)
        self.skipped.append(step)
        return False

    # --- the signals' and the query's bodies --------------------------------------------

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def skip(self, step: str) -> None:
        # only the step it waits on, and never a billing step; a late request for a past
        # step is void
        if step == self.step and self.skippable:
            self._skip.add(step)

    def answer(self, workflow_id: str) -> CampaignWaiting:
        return CampaignWaiting(
            campaign=self.campaign,
            workflow_id=workflow_id,
            step=self.step,
            waiting=self.waiting,
            next_step=self.next_step,
            next_step_at=self.next_step_at,
            paused=self.enabled and self.paused,
            marketing=self.marketing,
            skippable=self.skippable,
            done_steps=list(self.done),
            skipped_steps=list(self.skipped),
        )


class EntityReports:
    """Tells the customer's entity what one campaign waits for now (the ``campaign_wait``
    signal): once per change, in order (each report waits for the one before), never a
    timer already due, and ``nothing`` only after something. Every campaign child uses it, through its
    :class:`Controls` or (dunning) directly; behind ``patches.CAMPAIGN_REPORTS_WAITS``,
    decided by :meth:`begin` once a run."""

    def __init__(self, campaign: str) -> None:
        self.campaign = campaign
        self._entity: str | None = None  # the entity to tell (None: no reports)
        self._last: tuple[str, datetime | None] = (WAIT_NOTHING, None)
        self._sending: asyncio.Task[None] | None = None  # the last report, sent in order
        self._run_id: str | None = None  # the run named in each report (patches.CAMPAIGN_REPORTS_BY_RUN)

    def begin(self) -> None:
        parent = workflow.info().parent  # the entity (a campaign started on its own: none)
        if workflow.patched(patches.CAMPAIGN_REPORTS_WAITS) and parent is not None:
            self._entity = parent.workflow_id  # its latest run, whatever continue-as-new did
            if workflow.patched(patches.CAMPAIGN_REPORTS_BY_RUN):
                self._run_id = workflow.info().run_id

    def report(self, kind: str, until: datetime | None) -> None:
        """``kind`` until ``until`` from now on. A timer already due (a step due at once,
        an offer's, a welcome's) is no wait: not told."""
        if kind == WAIT_TIMER and until is not None and until <= workflow.now():
            return
        if self._entity is None or (kind, until) == self._last or (kind == WAIT_NOTHING == self._last[0]):
            return
        self._last = (kind, until)
        report = CampaignWait(self.campaign, workflow.info().workflow_id, kind, until, run_id=self._run_id)
        self._sending = asyncio.create_task(self._send(self._sending, self._entity, report))

    async def delivered(self) -> None:
        """Every report sent (call before the run returns)."""
        if self._sending is not None:
            await self._sending

    @staticmethod
    async def _send(before: asyncio.Task[None] | None, entity: str, report: CampaignWait) -> None:
        if before is not None:
            await before  # in order: the entity keeps the last report it hears
        try:
            await workflow.get_external_workflow_handle(entity).signal(CAMPAIGN_WAIT_SIGNAL, report)
        except FailureError as err:  # the entity is gone (deleted, terminated): nothing to tell
            workflow.logger.info("entity %s not told of %s (%s)", entity, report.kind, err)


class ControlledCampaign:
    """The messages every campaign child answers (inherit it; set ``self.controls``)."""

    controls: Controls

    @workflow.signal(name=PAUSE_SIGNAL)
    def pause(self) -> None:
        """Hold marketing steps until resume (transactional mail and billing go on)."""
        self.controls.pause()

    @workflow.signal(name=RESUME_SIGNAL)
    def resume(self) -> None:
        self.controls.resume()

    @workflow.signal(name=SKIP_STEP_SIGNAL)
    def skip_step(self, step: str) -> None:
        """Skip ``step`` if it is the one waiting (recorded on the timeline)."""
        self.controls.skip(step)

    @workflow.query(name=WAITING_QUERY)
    def waiting(self) -> CampaignWaiting:
        return self.controls.answer(workflow.info().workflow_id)
