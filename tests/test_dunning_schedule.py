"""The dunning's schedule on its own (plain Python, no Temporal): what is due when from the
default ``[dunning]`` policy in templates/campaigns.toml, the start and the grace granted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lifecycle.contracts.dunning import ENGINE, STRIPE, DunningInvoice, DunningSetup
from lifecycle.contracts.policy import load_policy
from lifecycle.settings import PROJECT_ROOT
from workflows.dunning.schedule import END, RETRY, STAGE, DunningSchedule

POLICY = load_policy(PROJECT_ROOT / "templates" / "campaigns.toml").dunning
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def schedule(retry_mode: str = ENGINE) -> DunningSchedule:
    s = DunningSchedule()
    s.begin(DunningSetup(policy=POLICY, retry_mode=retry_mode), T0)
    return s


def take(s: DunningSchedule, kind: int, ref: object) -> str:
    """Mark the due step taken, as the workflow does; answers its name."""
    if kind == RETRY:
        assert isinstance(ref, int)
        s.retried.append(ref)
        return f"retry_{ref}"
    if kind == STAGE:
        assert isinstance(ref, int)
        s.entered.append(POLICY.stages[ref].name)
        return POLICY.stages[ref].name
    s.end_taken = POLICY.end_action
    return f"end:{POLICY.end_action}"


def test_the_default_policy_puts_the_stages_on_days_0_3_5_7_and_the_end_on_day_21() -> None:
    s = schedule()
    assert [(st.name, s.stage_at(st)) for st in POLICY.stages] == [
        ("warning", day(0)), ("reminder", day(3)), ("grace", day(5)), ("suspended", day(7)),
    ]
    assert POLICY.suspend_day == 7
    assert s.end_at() == day(21)
    assert s.days(T0 + timedelta(hours=36)) == 1.5


def test_the_steps_come_in_order_and_a_retry_goes_before_a_stage_on_the_same_day() -> None:
    s, card = schedule(), [DunningInvoice("in_1", 4900)]
    steps = []
    while (due := s.due(card, T0)) is not None:
        at, kind, ref = due
        name, when = s.next_step(card, T0)
        assert when == at and take(s, kind, ref) == name
        steps.append((name, at))
    assert steps == [
        ("warning", day(0)), ("retry_1", day(1)),
        ("retry_2", day(3)), ("reminder", day(3)),
        ("retry_3", day(5)), ("grace", day(5)),
        ("retry_4", day(7)), ("suspended", day(7)),
        ("end:cancel", day(21)),
    ]
    assert s.next_step(card, T0) == (None, None)  # the end taken: nothing is due any more


def test_extend_grace_moves_the_suspension_and_the_end_but_not_the_earlier_stages_or_the_retries() -> None:
    s = schedule()
    s.extension_days = 3
    assert [s.stage_at(st) for st in POLICY.stages] == [day(0), day(3), day(5), day(10)]
    assert s.end_at() == day(24)
    assert [POLICY.retry_days, s.next_retry_at([DunningInvoice("in_1")])] == [[1, 3, 5, 7], day(1)]
    s.entered = ["warning", "reminder", "grace"]
    s.retried = [1, 2, 3, 4]
    assert s.next_step([DunningInvoice("in_1")], day(8)) == ("suspended", day(10))


def test_a_suspension_in_force_is_left_when_grace_moves_its_day_ahead() -> None:
    s = schedule()
    s.entered, s.retried = ["warning", "reminder", "grace", "suspended"], [1, 2, 3, 4]
    current = s.leave_moved(day(8))
    assert current is not None and current.name == "suspended"  # no grace granted: it stays
    s.extension_days = 2  # suspended now on day 9, the end on day 23
    current = s.leave_moved(day(8))
    assert current is not None and (current.name, current.suspend) == ("grace", False)
    assert s.entered == ["warning", "reminder", "grace"]
    assert s.next_step([DunningInvoice("in_1")], day(8)) == ("suspended", day(9))


def test_the_next_retry_is_the_first_retry_day_not_done_while_an_invoice_can_be_retried() -> None:
    s = schedule()
    card = [DunningInvoice("in_1")]
    assert s.next_retry_at(card) == day(1)
    s.retried = [1]
    assert s.next_retry_at(card) == day(3)
    s.retried = [1, 2, 3]
    assert s.next_retry_at(card) == day(7)
    s.retried = [1, 2, 3, 4]
    assert s.next_retry_at(card) is None  # the retry days are over
    s.retried = [1]
    assert s.next_retry_at([DunningInvoice("in_1", hard_decline=True)]) is None
    assert s.next_retry_at([DunningInvoice("in_1", requires_action=True)]) is None
    blocked = s.due([DunningInvoice("in_1", hard_decline=True)], T0)
    assert blocked == (day(0), STAGE, 0)  # no retry is scheduled for a card that must change
    s.end_taken = "cancel"
    assert s.next_retry_at(card) is None


def test_in_stripe_mode_the_next_retry_is_stripes_and_the_end_comes_when_it_gives_up() -> None:
    s = schedule(STRIPE)
    s.entered = ["warning"]
    later, sooner = day(4), day(2)
    invoices = [DunningInvoice("in_1", next_payment_attempt=later),
                DunningInvoice("in_2", next_payment_attempt=sooner)]
    assert s.next_retry_at(invoices) == sooner
    assert s.due(invoices, day(1)) == (day(3), STAGE, 1)  # the engine schedules no retry
    gave_up = [DunningInvoice("in_1", attempt_count=4, stripe_gave_up=True)]
    assert s.due(gave_up, day(1)) == (day(1), END, None)
    assert s.next_step(gave_up, day(1)) == ("end:cancel", day(1))


def test_before_the_dunning_began_nothing_is_due() -> None:
    s = DunningSchedule()
    assert s.next_step([], T0) == (None, None)
    assert s.next_retry_at([]) is None
