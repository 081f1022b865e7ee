"""Renewal reminders, the expansion offer and the team promotion on the time-skipping
server, with the real workflow code and the real activities against SQLite and the
outbox. Billing reaches the entity as the Stripe webhook hand-over sends it (the
``stripe.subscription`` event), usage as the usage crossings do (``usage_threshold``)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from lifecycle.billing.cards import record_card, set_default_card
from lifecycle.billing.payment_shapes import CardRec
from lifecycle.contracts.customer import CustomerEvent, CustomerState
from lifecycle.contracts.events import (
    Activation,
    InvoicePaid,
    InvoicePaymentFailed,
    Resubscribed,
    StripeSubscription,
    Unsubscribed,
    UsageThreshold,
    customer_event,
)
from lifecycle.contracts.ids import customer_workflow_id, renewal_workflow_id
from lifecycle.contracts.stages import ACTIVE, PAST_DUE
from lifecycle.models import Customer, EmailMessage, LifecycleEvent, Subscription
from lifecycle.settings import Settings
from starter.signals.send import signal_customer, start_input
from tests.support.helpers import add_customer, emails, eventually, timeline
from worker import build_worker
from workflows.customer import CustomerWorkflow

UTC = dt.UTC


@pytest.fixture
async def worker(client: Client, settings: Settings, session_factory) -> AsyncIterator[None]:  # noqa: ANN001
    async with build_worker(client, settings, session_factory):
        yield


class Customer_:
    """One customer's entity on the test server, and what the tests send it."""

    def __init__(self, client: Client, sessions: sessionmaker[Session], cid: str) -> None:
        self.client, self.sessions, self.id = client, sessions, cid
        self.handle: WorkflowHandle = client.get_workflow_handle(customer_workflow_id(cid))
        self._n = 0

    async def send(self, payload: object) -> None:
        self._n += 1
        await signal_customer(self.client, self.id, customer_event(f"t:{self.id}:{self._n}", payload))  # type: ignore[arg-type]

    async def state(self) -> CustomerState:
        return await self.handle.query(CustomerWorkflow.state)

    async def subscription(self, plan: str, interval: str, period_end: dt.datetime, status: str = "active",
                           **changes: object) -> None:
        await self.send(StripeSubscription(
            stripe_subscription_id=f"sub_{self.id}", stripe_customer_id=f"cus_{self.id}", status=status,
            plan=plan, interval=interval, current_period_end=period_end, event_type="customer.subscription.updated",
            **changes,  # type: ignore[arg-type]
        ))

    async def usage(self, metric: str, threshold: int, used: float, limit: float,
                    start: dt.datetime, end: dt.datetime, plan: str | None = None) -> None:
        await self.send(UsageThreshold(metric=metric, threshold=threshold, used=used, limit=limit,
                                       limit_kind="hard", period_start=start, period_end=end, plan=plan))

    def mails(self, campaign: str) -> list[EmailMessage]:
        return [m for m in emails(self.sessions, self.id) if m.campaign == campaign]

    def entries(self, kind: str, campaign: str | None = None) -> list[LifecycleEvent]:
        return [e for e in timeline(self.sessions, self.id)
                if e.kind == kind and (campaign is None or e.campaign == campaign)]


async def customer(
    client: Client, settings: Settings, sessions: sessionmaker[Session], plan: str, stage: str | None = ACTIVE
) -> Customer_:
    """A customer and its entity: a fresh signup (``stage=None``: trialing, trial and
    onboarding running) or an entity already in ``stage``."""
    cid = f"cus-{uuid.uuid4().hex[:10]}"
    add_customer(sessions, cid, plan=plan)
    start = start_input(settings, cid, plan)
    if stage is not None:
        start = replace(start, state=CustomerState(customer_id=cid, plan=plan, stage=stage,
                                                   stage_changed_at=dt.datetime.now(UTC)))
    await signal_customer(client, cid, CustomerEvent(f"signup:{cid}", "signup"), start=start,
                          task_queue=settings.task_queue)
    return Customer_(client, sessions, cid)


async def exists(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
        return True
    except RPCError:
        return False


def renewal_mails(c: Customer_) -> list[str]:
    return [m.step for m in c.mails("renewal")]


# --- renewal ------------------------------------------------------------------------------


async def test_annual_reminders_30_and_7_days_before_say_amount_card_and_how_to_change(
    ts_env: WorkflowEnvironment, client: Client, settings: Settings, session_factory, worker  # noqa: ANN001
) -> None:
    c = await customer(client, settings, session_factory, "professional")
    now = await ts_env.get_current_time()
    period_end = now + timedelta(days=60)
    # the billing mirror: the subscription after a 10 % coupon, and the customer's default card
    with session_factory() as s:
        s.get(Customer, c.id).stripe_customer_id = f"cus_{c.id}"  # type: ignore[union-attr]
        s.add(Subscription(stripe_subscription_id=f"sub_{c.id}", customer_id=c.id, plan_code="professional",
                           interval="year", amount_cents=44100, status="active", current_period_end=period_end))
        s.flush()
        record_card(s, CardRec("pm_1", f"cus_{c.id}", "visa", "4242", 12, 2030), 1)
        set_default_card(s, c.id, "pm_1", 1)
        s.commit()
    await c.subscription("professional", "year", period_end)
    renewal_id = renewal_workflow_id(c.id, period_end)
    await eventually(lambda: exists(client, renewal_id))

    await ts_env.sleep(timedelta(days=29, hours=23))  # 30 days and 1 hour before the renewal
    assert renewal_mails(c) == []
    await ts_env.sleep(timedelta(hours=2))
    await eventually(lambda: renewal_mails(c) == ["renewal_30_days"])
    [mail] = c.mails("renewal")
    assert mail.category == "marketing"
    assert f"renews on {period_end:%B} {period_end.day}, {period_end.year}" in mail.subject
    for text in (mail.text, mail.html):
        assert "$441" in text and "Visa ending 4242" in text  # after the discount, on that card
        assert "/billing" in text and "Change" in text

    await ts_env.sleep(timedelta(days=22))  # 8 days before: nothing new
    assert renewal_mails(c) == ["renewal_30_days"]
    await ts_env.sleep(timedelta(days=1, hours=1))
    await eventually(lambda: renewal_mails(c) == ["renewal_30_days", "renewal_7_days"])
    assert await client.get_workflow_handle(renewal_id).result() == "reminded"
    state = await eventually(lambda: _renewal_finished(c))
    assert state.outcomes[f"renewal/{period_end:%Y%m%d}"] == "reminded"


async def _renewal_finished(c: Customer_) -> CustomerState | None:
    state = await c.state()
    return state if not any(k.startswith("renewal/") for k in state.campaigns) and state.outcomes else None


async def test_a_new_period_end_moves_the_reminders(
    ts_env: WorkflowEnvironment, client: Client, settings: Settings, session_factory, worker  # noqa: ANN001
) -> None:
    c = await customer(client, settings, session_factory, "starter")
    now = await ts_env.get_current_time()
    first, moved = now + timedelta(days=40), now + timedelta(days=100)
    await c.subscription("starter", "year", first)
    await eventually(lambda: exists(client, renewal_workflow_id(c.id, first)))
    await c.subscription("starter", "year", moved)  # e.g. the billing anchor changed in Stripe
    assert await client.get_workflow_handle(renewal_workflow_id(c.id, first)).result() == "dropped"
    skipped = c.entries("email_skipped", "renewal")
    assert {e.detail["step"] for e in skipped} == {"renewal_30_days", "renewal_7_days"}
    assert {e.detail["reason"] for e in skipped} == {f"the renewal moved to {moved:%Y-%m-%d}"}

    await ts_env.sleep(timedelta(days=11))  # when the first date's 30-day reminder was due
    assert renewal_mails(c) == []
    await ts_env.sleep(timedelta(days=59, hours=1))  # 30 days before the new date
    await eventually(lambda: renewal_mails(c) == ["renewal_30_days"])
    assert str(moved.year) in c.mails("renewal")[0].subject
    assert f"{moved:%B} {moved.day}" in c.mails("renewal")[0].subject
    assert "$190" in c.mails("renewal")[0].text  # no mirror row: the tier's annual price
    assert "your card on file" in c.mails("renewal")[0].text


@pytest.mark.parametrize(
    ("change", "reason", "again"),
    [
        ({"cancel_at_period_end": True}, "the customer canceled", None),
        ({"plan": "business"}, "the customer changed plan", "Business"),  # still annual: new terms
        ({"interval": "month"}, "the customer changed plan", None),  # monthly now: no reminders
    ],
)
async def test_a_waiting_reminder_is_dropped_by_a_cancellation_or_a_plan_change(
    ts_env: WorkflowEnvironment, client: Client, settings: Settings, session_factory, worker,  # noqa: ANN001
    change: dict[str, object], reason: str, again: str | None,
) -> None:
    c = await customer(client, settings, session_factory, "professional")
    period_end = await ts_env.get_current_time() + timedelta(days=60)
    await c.subscription("professional", "year", period_end)
    renewal_id = renewal_workflow_id(c.id, period_end)
    await eventually(lambda: exists(client, renewal_id))
    first_run = client.get_workflow_handle(renewal_id, run_id=(await client.get_workflow_handle(renewal_id).describe()).run_id)
    await ts_env.sleep(timedelta(days=10))
    await c.subscription(**{"plan": "professional", "interval": "year", "period_end": period_end, **change})  # type: ignore[arg-type]
    assert await first_run.result() == "dropped"
    assert [(e.detail["step"], e.detail["reason"]) for e in c.entries("email_skipped", "renewal")] == [
        ("renewal_30_days", reason), ("renewal_7_days", reason)]
    await ts_env.sleep(timedelta(days=21))  # 29 days before the renewal
    if again is None:
        await ts_env.sleep(timedelta(days=30))  # past both reminders' times
        assert renewal_mails(c) == []
        assert not any(k.startswith("renewal/") for k in (await c.state()).campaigns)
    else:  # the same date's reminders started again, stating the new plan and its price
        await eventually(lambda: renewal_mails(c) == ["renewal_30_days"])
        [mail] = c.mails("renewal")
        assert again in mail.subject and "$990" in mail.text


async def test_a_cancellation_taken_back_brings_the_reminders_back(
    ts_env: WorkflowEnvironment, client: Client, settings: Settings, session_factory, worker  # noqa: ANN001
) -> None:
    c = await customer(client, settings, session_factory, "starter")
    period_end = await ts_env.get_current_time() + timedelta(days=60)
    await c.subscription("starter", "year", period_end)
    renewal_id = renewal_workflow_id(c.id, period_end)
    await eventually(lambda: exists(client, renewal_id))
    first_run = (await client.get_workflow_handle(renewal_id).describe()).run_id
    await c.subscription("starter", "year", period_end, cancel_at_period_end=True)
    assert await client.get_workflow_handle(renewal_id, run_id=first_run).result() == "dropped"
    await c.subscription("starter", "year", period_end)  # reactivated before the period end

    async def second_run() -> bool:
        return (await client.get_workflow_handle(renewal_id).describe()).run_id != first_run

    await eventually(second_run)
    await ts_env.sleep(timedelta(days=30, hours=1))
    await eventually(lambda: renewal_mails(c) == ["renewal_30_days"])
    assert "$190" in c.mails("renewal")[0].text


async def test_a_failed_renewal_goes_to_past_due_for_dunning_and_the_next_reminders_start(
    ts_env: WorkflowEnvironment, client: Client, settings: Settings, session_factory, worker  # noqa: ANN001
) -> None:
    c = await customer(client, settings, session_factory, "professional")
    end = await ts_env.get_current_time() + timedelta(days=40)
    await c.subscription("professional", "year", end)
    renewal = client.get_workflow_handle(renewal_workflow_id(c.id, end))
    await eventually(lambda: exists(client, renewal.id))
    await ts_env.sleep(timedelta(days=40, hours=1))
    assert await renewal.result() == "reminded"
    # Stripe renews: the charge fails (dunning's trigger) and the new period begins past_due
    nxt = end + timedelta(days=365)
    await c.send(InvoicePaymentFailed(invoice_id="in_renewal", stripe_subscription_id=f"sub_{c.id}",
                                      amount_due_cents=49000, attempt_count=1))
    await c.subscription("professional", "year", nxt, status="past_due")
    await eventually(lambda: _stage_is(c, PAST_DUE))
    await eventually(lambda: exists(client, renewal_workflow_id(c.id, nxt)))
    assert renewal_mails(c) == ["renewal_30_days", "renewal_7_days"]


async def _stage_is(c: Customer_, stage: str) -> bool:
    return (await c.state()).stage == stage


async def test_a_monthly_plan_gets_no_renewal_reminders(
    ts_env: WorkflowEnvironment, client: Client, settings: Settings, session_factory, worker  # noqa: ANN001
) -> None:
    c = await customer(client, settings, session_factory, "business")
    period_end = await ts_env.get_current_time() + timedelta(days=30)
    await c.subscription("business", "month", period_end)
    await eventually(lambda: _billing_heard(c, period_end))
    await ts_env.sleep(timedelta(days=31))
    assert not await exists(client, renewal_workflow_id(c.id, period_end))
    assert renewal_mails(c) == [] and (await c.state()).retention.renewal_period_end is None


async def test_a_period_end_already_past_waits_for_the_next_date(
    ts_env: WorkflowEnvironment, client: Client, settings: Settings, session_factory, worker  # noqa: ANN001
) -> None:
    c = await customer(client, settings, session_factory, "starter")
    now = await ts_env.get_current_time()
    past, nxt = now - timedelta(days=1), now + timedelta(days=364)
    await c.subscription("starter", "year", past)  # e.g. a plan change applied before the new period is heard
    await eventually(lambda: _billing_heard(c, past))
    assert not await exists(client, renewal_workflow_id(c.id, past))
    await c.subscription("starter", "year", nxt)
    await eventually(lambda: exists(client, renewal_workflow_id(c.id, nxt)))
    assert c.entries("email_skipped", "renewal") == []


async def _billing_heard(c: Customer_, period_end: dt.datetime) -> bool:
    return (await c.state()).billing.current_period_end == period_end


# --- expansion offer --------------------------------------------------------------------


def periods(start: dt.datetime, n: int) -> list[tuple[dt.datetime, dt.datetime]]:
    edges = [start + timedelta(days=30 * i) for i in range(n + 1)]
    return list(zip(edges, edges[1:], strict=False))


async def _heard_periods(c: Customer_, n: int) -> CustomerState | None:
    state = await c.state()
    return state if len(state.retention.high_periods) == n else None


async def test_expansion_offer_after_two_high_periods_not_after_one_and_not_twice_in_90_days(
    ts_env: WorkflowEnvironment, client: Client, settings: Settings, session_factory, worker  # noqa: ANN001
) -> None:
    c = await customer(client, settings, session_factory, "professional")
    now = await ts_env.get_current_time()
    p = periods(now - timedelta(days=30), 6)
    await c.usage("ai_requests", 80, 8000, 10000, *p[0])
    state = await eventually(lambda: _heard_periods(c, 1))
    assert "expansion" not in state.campaigns and c.mails("expansion") == []  # one high period: no offer

    await c.usage("storage_gb", 80, 41, 50, *p[1])  # any limit counts
    await eventually(lambda: len(c.mails("expansion")) == 1)
    [mail] = c.mails("expansion")
    assert mail.category == "marketing" and "Business is $99/month" in mail.subject
    for text in (mail.text, mail.html):
        assert "team features" in text and "priority support" in text and "$990 a year" in text
        assert "/billing/upgrade?plan=business" in text
    [offer] = await eventually(lambda: c.entries("offer_made", "expansion"))
    assert offer.detail["offer"] == "next_tier" and offer.detail["plan"] == "business"
    assert offer.detail["email"] == "sent"

    await c.usage("ai_requests", 100, 10000, 10000, *p[1])  # the same period again: nothing
    await c.usage("ai_requests", 80, 8100, 10000, *p[2])  # a third high period within 90 days
    [skipped] = await eventually(lambda: c.entries("offer_skipped", "expansion"))
    assert "within 90 days" in skipped.detail["reason"]
    assert len(c.mails("expansion")) == 1

    await ts_env.sleep(timedelta(days=91))
    await c.usage("ai_requests", 80, 8200, 10000, *p[3])
    await eventually(lambda: len(c.mails("expansion")) == 2)


async def test_high_periods_that_are_not_back_to_back_make_no_offer(
    ts_env: WorkflowEnvironment, client: Client, settings: Settings, session_factory, worker  # noqa: ANN001
) -> None:
    c = await customer(client, settings, session_factory, "starter")
    p = periods(await ts_env.get_current_time() - timedelta(days=60), 3)
    await c.usage("ai_requests", 80, 800, 1000, *p[0])
    await c.usage("ai_requests", 80, 800, 1000, *p[2])
    state = await eventually(lambda: _heard_periods(c, 2))
    assert "expansion" not in state.campaigns and c.entries("offer_skipped") == []
    assert c.mails("expansion") == []


async def test_a_monthly_customer_on_the_top_tier_is_offered_the_annual_interval(
    ts_env: WorkflowEnvironment, client: Client, settings: Settings, session_factory, worker  # noqa: ANN001
) -> None:
    c = await customer(client, settings, session_factory, "enterprise")
    p = periods(await ts_env.get_current_time() - timedelta(days=30), 2)
    await c.usage("ai_requests", 80, 200_000, 250_000, *p[0])
    await c.usage("ai_requests", 80, 210_000, 250_000, *p[1])
    [mail] = await eventually(lambda: c.mails("expansion"))
    assert "Enterprise yearly for $1,990" in mail.subject
    assert "10 months at $199" in mail.text and "You save $398" in mail.text
    assert "/billing/upgrade?interval=year" in mail.text


# --- team promotion ---------------------------------------------------------------------


def invited() -> Activation:
    """One invitation reported by the product (each report its own event id)."""
    return Activation(fact="invited_teammate")


async def test_team_promotion_once_when_three_seats_are_used(
    ts_env: WorkflowEnvironment, client: Client, settings: Settings, session_factory, worker  # noqa: ANN001
) -> None:
    c = await customer(client, settings, session_factory, "professional")
    [p] = periods(await ts_env.get_current_time() - timedelta(days=10), 1)
    await c.usage("seats", 80, 2.4, 3, *p)  # below the policy's 3 seats: nothing
    await c.usage("seats", 100, 3, 3, *p)
    [mail] = await eventually(lambda: c.mails("team_promotion"))
    assert mail.category == "marketing" and "Business" in mail.subject
    for text in (mail.text, mail.html):
        assert "$99/month" in text and "team features" in text and "10 seats (from 3)" in text
        assert "Analytical Engines" in text
    [offer] = await eventually(lambda: c.entries("offer_made", "team_promotion"))
    assert offer.detail["why"] == "3 seats in use"
    # reported again, next period, and by invitations: never a second promotion
    [q] = periods(p[1], 1)
    await c.usage("seats", 100, 3, 3, *q)
    for _ in range(3):
        await c.send(invited())
    await eventually(lambda: _reports(c, 3))
    assert len(c.mails("team_promotion")) == 1
    assert c.entries("offer_skipped", "team_promotion") == []


async def _reports(c: Customer_, n: int) -> CustomerState | None:
    state = await c.state()
    return state if state.retention.fact_reports.get("invited_teammate") == n else None


async def test_team_promotion_after_the_third_invited_teammate_report_and_onboarding_unchanged(
    ts_env: WorkflowEnvironment, client: Client, settings: Settings, session_factory, worker  # noqa: ANN001
) -> None:
    c = await customer(client, settings, session_factory, "starter")
    for _ in range(2):
        await c.send(invited())
    state = await eventually(lambda: _reports(c, 2))
    assert state.retention.team_promoted_at is None and "team_promotion" not in state.campaigns
    await c.send(invited())
    [mail] = await eventually(lambda: c.mails("team_promotion"))
    assert "$99/month" in mail.text and "api access" in mail.text  # Business over Starter
    [offer] = await eventually(lambda: c.entries("offer_made", "team_promotion"))
    assert offer.detail["why"] == "invited_teammate reported 3 times"
    assert (await c.state()).activation_facts == ["invited_teammate"]  # the fact itself recorded once


async def test_team_promotion_waits_out_the_trials_first_three_days(
    ts_env: WorkflowEnvironment, client: Client, settings: Settings, session_factory, worker  # noqa: ANN001
) -> None:
    c = await customer(client, settings, session_factory, "starter", stage=None)  # a fresh signup
    await eventually(lambda: _trialing(c))
    for _ in range(3):
        await c.send(invited())
    [skipped] = await eventually(lambda: c.entries("offer_skipped", "team_promotion"))
    assert skipped.detail["reason"] == "in the trial's first 3 days"  # recorded once, not per report
    assert c.mails("team_promotion") == []
    signed_up = (await c.state()).trial_ends_at - timedelta(days=14)  # type: ignore[operator]
    # no more reports: the next event after day 3 (onboarding ending on day 7) asks again
    await ts_env.sleep(timedelta(days=7, hours=1))
    [mail] = await eventually(lambda: c.mails("team_promotion"))
    [offer] = c.entries("offer_made", "team_promotion")
    assert offer.occurred_at >= signed_up + timedelta(days=3)
    assert offer.detail["why"] == "invited_teammate reported 3 times"
    # onboarding still heard the fact once: its invite tip (day 3) was skipped as before
    assert "tip_invite_team" not in [m.step for m in c.mails("onboarding")]
    assert len(c.entries("offer_skipped", "team_promotion")) == 1


async def _trialing(c: Customer_) -> bool:
    state = await c.state()
    return state.stage == "trialing" and state.trial_ends_at is not None


async def test_no_team_promotion_in_dunning_and_one_once_the_invoice_is_paid(
    ts_env: WorkflowEnvironment, client: Client, settings: Settings, session_factory, worker  # noqa: ANN001
) -> None:
    c = await customer(client, settings, session_factory, "professional", stage=PAST_DUE)
    [p] = periods(await ts_env.get_current_time() - timedelta(days=10), 1)
    await c.usage("seats", 100, 3, 3, *p)
    [skipped] = await eventually(lambda: c.entries("offer_skipped", "team_promotion"))
    assert skipped.detail["reason"] == "customer is past_due"
    assert c.mails("team_promotion") == []
    # the invoice paid ends dunning: the promotion held back goes out then, once
    await c.send(InvoicePaid(invoice_id="in_1", stripe_subscription_id="sub_1", amount_due_cents=4900))
    await eventually(lambda: len(c.mails("team_promotion")) == 1)
    assert (await c.state()).stage == ACTIVE
    for _ in range(3):
        await c.send(invited())
    await eventually(lambda: _reports(c, 3))
    assert len(c.mails("team_promotion")) == 1


async def test_an_unsubscribed_customer_is_not_promoted_until_they_resubscribe(
    ts_env: WorkflowEnvironment, client: Client, settings: Settings, session_factory, worker  # noqa: ANN001
) -> None:
    c = await customer(client, settings, session_factory, "professional")
    await c.send(Unsubscribed(source="unsubscribe_page"))
    for _ in range(3):
        await c.send(invited())
    [skipped] = await eventually(lambda: c.entries("offer_skipped", "team_promotion"))
    assert skipped.detail["reason"] == "unsubscribed from marketing email"
    assert (await c.state()).retention.team_promoted_at is None  # the once-only promotion is not used up
    await c.send(Resubscribed(source="preferences"))  # asked again at once
    await eventually(lambda: len(c.mails("team_promotion")) == 1)
    await eventually(lambda: c.entries("offer_made", "team_promotion"))  # the child's last step


@pytest.mark.parametrize("plan", ["business", "enterprise"])
async def test_no_team_promotion_on_business_or_enterprise(
    ts_env: WorkflowEnvironment, client: Client, settings: Settings, session_factory, worker, plan: str  # noqa: ANN001
) -> None:
    c = await customer(client, settings, session_factory, plan)
    [p] = periods(await ts_env.get_current_time() - timedelta(days=10), 1)
    await c.usage("seats", 80, 8, 10, *p)
    for _ in range(3):
        await c.send(invited())
    state = await eventually(lambda: _reports(c, 3))
    assert state.retention.team_promoted_at is None and "team_promotion" not in state.campaigns
    assert c.mails("team_promotion") == [] and c.entries("offer_skipped", "team_promotion") == []


async def test_no_team_promotion_to_a_customer_on_business_in_the_last_90_days(
    ts_env: WorkflowEnvironment, client: Client, settings: Settings, session_factory, worker  # noqa: ANN001
) -> None:
    c = await customer(client, settings, session_factory, "business")
    period_end = await ts_env.get_current_time() + timedelta(days=20)
    await c.subscription("business", "month", period_end)
    await eventually(lambda: _billing_heard(c, period_end))
    await ts_env.sleep(timedelta(days=10))
    await c.subscription("professional", "month", period_end)  # the downgrade applied
    await eventually(lambda: _plan(c, "professional"))
    for _ in range(3):
        await c.send(invited())
    [skipped] = await eventually(lambda: c.entries("offer_skipped", "team_promotion"))
    assert skipped.detail["reason"] == "was on business within the last 90 days"
    await ts_env.sleep(timedelta(days=91))
    await c.send(invited())
    await eventually(lambda: len(c.mails("team_promotion")) == 1)


async def _plan(c: Customer_, plan: str) -> bool:
    return (await c.state()).plan == plan


# --- what ops and the product see ---------------------------------------------------------


async def test_the_customer_view_and_customer_show_list_the_renewal_and_the_offers(
    ts_env: WorkflowEnvironment, client: Client, settings: Settings, session_factory, worker  # noqa: ANN001
) -> None:
    import httpx

    from starter.api.app import create_app
    from tests.test_cli import run

    c = await customer(client, settings, session_factory, "professional")
    period_end = await ts_env.get_current_time() + timedelta(days=60)
    await c.subscription("professional", "year", period_end)
    for _ in range(3):
        await c.send(invited())
    await eventually(lambda: c.entries("offer_made", "team_promotion"))
    key = f"renewal/{period_end:%Y%m%d}"

    app = create_app(settings, temporal=client)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api",
                                     headers={"Authorization": "Bearer test-key"}) as http:
            view = (await http.get(f"/v1/customers/{c.id}")).json()
    assert key in view["running_campaigns"]
    [step] = [s for s in view["next_steps"] if s["campaign"] == key]
    assert step["step"] == "renewal_30_days"
    assert dt.datetime.fromisoformat(step["at"]) == period_end - timedelta(days=30)
    assert dt.datetime.fromisoformat(view["retention"]["renewal_date"]) == period_end
    assert view["retention"]["renewal_reminders_running"] is True
    assert view["retention"]["team_promoted_at"] is not None
    assert view["retention"]["last_expansion_offer_at"] is None

    shown = run(settings, "customer", "show", c.id)
    assert shown.returncode == 0, shown.stderr
    assert "team promotion" in shown.stdout and "business $99 (sent)" in shown.stdout
    assert "expansion offer -" in shown.stdout
    assert "renewal reminders: -" in shown.stdout


async def test_what_retention_remembers_survives_continue_as_new(
    dev_env: WorkflowEnvironment, settings: Settings, session_factory  # noqa: ANN001
) -> None:
    """On the dev server (a child finishing after its parent continued-as-new stalls the
    time-skipping server's clock): an entity that continues-as-new every two events still
    counts the invitations across runs and still drops the renewal it started in an
    earlier run when the period moves."""
    client = dev_env.client
    async with build_worker(client, settings, session_factory):
        cid = f"cus-{uuid.uuid4().hex[:10]}"
        add_customer(session_factory, cid, plan="professional")
        start = replace(start_input(settings, cid, "professional"), max_events_per_run=2, state=CustomerState(
            customer_id=cid, plan="professional", stage=ACTIVE, stage_changed_at=dt.datetime.now(UTC)))
        await signal_customer(client, cid, CustomerEvent(f"signup:{cid}", "signup"), start=start,
                              task_queue=settings.task_queue)
        c = Customer_(client, session_factory, cid)
        now = dt.datetime.now(UTC)
        first, moved = now + timedelta(days=60), now + timedelta(days=90)
        await c.subscription("professional", "year", first)
        await eventually(lambda: exists(client, renewal_workflow_id(cid, first)))
        for _ in range(3):
            await c.send(invited())
        await c.subscription("professional", "year", moved)
        assert await client.get_workflow_handle(renewal_workflow_id(cid, first)).result() == "dropped"
        await eventually(lambda: exists(client, renewal_workflow_id(cid, moved)))
        await eventually(lambda: len(c.mails("team_promotion")) == 1)
        state = await c.state()
        assert state.runs >= 3 and state.retention.fact_reports == {"invited_teammate": 3}
        assert state.retention.renewal_period_end == moved
