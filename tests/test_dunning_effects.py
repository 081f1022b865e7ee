"""The variables of the dunning's emails (plain Python, no Temporal): the amounts of the open
or paid invoices, and the suspension and end dates the schedule gives under the default
``[dunning]`` policy of templates/campaigns.toml."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lifecycle.contracts.dunning import DunningInvoice, DunningSetup
from lifecycle.contracts.policy import load_policy
from lifecycle.settings import PROJECT_ROOT
from workflows.dunning.effects import email_context, recovered_context
from workflows.dunning.schedule import DunningSchedule

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def day(n: float) -> str:
    return (T0 + timedelta(days=n)).isoformat()


def schedule() -> DunningSchedule:
    s = DunningSchedule()
    s.begin(DunningSetup(policy=load_policy(PROJECT_ROOT / "templates" / "campaigns.toml").dunning), T0)
    return s


def test_a_stage_email_names_the_open_amount_the_decline_and_the_days_from_the_schedule() -> None:
    s = schedule()
    open_ = [DunningInvoice("in_1", 4900, decline_code="insufficient_funds"),
             DunningInvoice("in_2", 9950, hard_decline=True, decline_code="expired_card")]
    assert email_context(open_, s, 3.5) == {
        "amount": "$148.50",
        "invoice_count": 2,
        "hard_decline": True,
        "decline_code": "insufficient_funds",
        "days_overdue": 3,
        "suspend_at": day(7),
        "end_at": day(21),
        "end_action": "cancel",
    }
    s.extension_days = 2  # extend_grace: the suspension and the end move, the email says so
    moved = email_context(open_, s, 8.0)
    assert (moved["suspend_at"], moved["end_at"]) == (day(9), day(23))


def test_the_recovery_email_names_the_amount_paid_and_the_whole_days() -> None:
    paid = [DunningInvoice("in_1", 4900), DunningInvoice("in_2", 4900)]
    assert recovered_context(paid, 4.62) == {"amount": "$98", "days": 5}
