"""UsageNudgeWorkflow (``customer-{id}/usage/{metric}/{YYYYMMDD}/{threshold}``): one usage email.

Started by the customer's entity workflow when a usage counter crosses a threshold:
at 80 % the upgrade nudge (how much is left, the next tier up with its price and what
it adds); at 100 % a limit-reached email (hard limit: requests are now refused) or an
overage notice (soft limit). Trial customers get the trial versions. The id is
deterministic per metric, period and threshold, and the email's idempotency key is
that id plus the step, so it goes out once per billing period whatever is retried.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from lifecycle.contracts.campaigns import UsageNudgeInput
    from lifecycle.contracts.email import EMAIL_SKIPPED
    from lifecycle.contracts.ids import USAGE_CAMPAIGN
    from lifecycle.contracts.policy import EmailStep
    from lifecycle.contracts.stages import TRIALING
    from lifecycle.contracts.tiers import Tiers, added_by, tiers_from_catalog
    from workflows import patches
    from workflows.controls import SKIPPED_BY_OPS, ControlledCampaign, Controls
    from workflows.email_step import record_step_skipped, send_step_email
    from workflows.timeline import data_error

CAMPAIGN = USAGE_CAMPAIGN
METRIC_LABELS = {"ai_requests": "AI requests", "seats": "seats", "storage_gb": "storage"}


def choose_step(input: UsageNudgeInput) -> EmailStep:
    """Which email this crossing gets, from the policy."""
    p = input.policy
    trial = input.stage == TRIALING
    if input.threshold < 100:
        template = p.nudge_trial_template if trial else p.nudge_template
        return EmailStep(name=f"nudge_{input.threshold}", template=template, category=p.nudge_category)
    if input.limit_kind == "hard":
        template = p.limit_reached_trial_template if trial else p.limit_reached_template
        return EmailStep(name="limit_reached", template=template, category=p.notice_category)
    template = p.overage_trial_template if trial else p.overage_template
    return EmailStep(name="overage", template=template, category=p.notice_category)


def nudge_tiers(input: UsageNudgeInput) -> Tiers:
    return input.tiers if input.tiers is not None else tiers_from_catalog()


def email_context(input: UsageNudgeInput, *, with_instant: bool = False) -> dict[str, object]:
    """What the usage templates may use (facts only, no PII), from the entity's snapshot of
    the tiers (a nudge from an entity without one: the catalog, as before). ``with_instant``:
    also the period's end as an instant (``period_end_at``), from which the email shows
    ``period_end`` on the customer's calendar."""
    tiers = nudge_tiers(input)
    plan = tiers.get(input.plan)  # known: run() skips the email otherwise
    nxt = tiers.next_up(plan.code)
    unit = tiers.metric_units.get(input.metric, input.metric)
    lim = plan.limit(input.metric)
    used, limit = input.used, input.limit

    def fmt(x: float) -> str:
        return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"

    return {
        "usage": {
            "metric": input.metric,
            "metric_label": METRIC_LABELS.get(input.metric, input.metric.replace("_", " ")),
            "unit": (lim.unit if lim and lim.unit else unit),
            "threshold": input.threshold,
            "used": fmt(used),
            "limit": fmt(limit),
            "remaining": fmt(max(limit - used, 0)),
            "overage": fmt(max(used - limit, 0)),
            "percent": int(used * 100 // limit) if limit else 0,
            "limit_kind": input.limit_kind,
            "period_end": f"{input.period_end:%B} {input.period_end.day}" if input.period_end else "",
            **({"period_end_at": input.period_end.isoformat()} if with_instant and input.period_end else {}),
            "plan_name": plan.name,
        },
        "trialing": input.stage == TRIALING,
        "next_plan": None if nxt is None else {
            "code": nxt.code,
            "name": nxt.name,
            "price": nxt.monthly_price,
            "adds": added_by(nxt, plan),
            "metric_limit": fmt(lim.amount) if (lim := nxt.limit(input.metric)) else None,
        },
    }


@workflow.defn
class UsageNudgeWorkflow(ControlledCampaign):
    @workflow.init
    def __init__(self, input: UsageNudgeInput) -> None:
        self._superseded = False
        self.controls = Controls(CAMPAIGN)
        self.controls.paused = input.paused

    @workflow.signal
    def supersede(self) -> None:
        """The limit itself was reached (or the plan changed): an 80 % nudge still waiting is stale."""
        self._superseded = True

    @workflow.run
    async def run(self, input: UsageNudgeInput) -> str:
        self.controls.begin()
        local = workflow.patched(patches.USAGE_PERIOD_END_IN_CUSTOMER_ZONE)
        step = choose_step(input)
        self.controls.on_step(step.name, None, marketing=step.category == "marketing")
        tiers = nudge_tiers(input)
        if tiers.find(input.plan) is None:  # a plan the entity's snapshot lacks: no email to write
            error = tiers.unknown(input.plan)
            await data_error(input.customer_id, error, key=workflow.info().workflow_id, campaign=CAMPAIGN,
                             unknown="plan", value=input.plan, skipped=step.name)
            await record_step_skipped(input.customer_id, CAMPAIGN, step, error)
            await self.controls.finished()
            return EMAIL_SKIPPED
        if not await self.controls.until_unpaused(step.name):  # started paused, then skipped by ops
            skipped = await send_step_email(input.customer_id, CAMPAIGN, step,
                                            email_context(input, with_instant=local),
                                            skip_reason=SKIPPED_BY_OPS)
            await self.controls.finished()
            return skipped.status
        stop = None
        if input.threshold < 100 and workflow.patched(patches.USAGE_NUDGE_SUPERSEDE):
            stop = lambda: self._superseded  # noqa: E731
        result = await send_step_email(
            input.customer_id,
            CAMPAIGN,
            step,
            email_context(input, with_instant=local),
            stop=stop,
            stop_reason="the limit was reached before the nudge could go out",
            controls=self.controls,
        )
        self.controls.step_done(step.name)
        await self.controls.finished()
        return result.status
