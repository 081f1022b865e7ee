"""The pure parts of growth: the [renewal] and [team_promotion] policy (a malformed one is
refused with the key named), which high-usage periods run back to back, and what a
renewal reminder states when the billing mirror knows little."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lifecycle.contracts.growth import GrowthState, RenewalInput, RenewalTerms
from lifecycle.contracts.money import money
from lifecycle.contracts.policy import EmailStep, PolicyError, load_policy, parse_policy
from lifecycle.contracts.tiers import tiers_from_catalog
from lifecycle.settings import PROJECT_ROOT
from workflows.growth.renewal import reminder_context

DEFAULT = PROJECT_ROOT / "templates" / "campaigns.toml"
T0 = datetime(2027, 1, 1, tzinfo=UTC)


def test_the_default_policy_reminds_30_and_7_days_before_and_promotes_business_at_3() -> None:
    policy = load_policy(DEFAULT)
    assert [(r.name, r.days_before_end, r.category) for r in policy.renewal.reminders] == [
        ("renewal_30_days", 30, "marketing"), ("renewal_7_days", 7, "marketing")]
    assert policy.renewal.expansion is not None and policy.renewal.expansion.category == "marketing"
    assert (policy.renewal.expansion_periods, policy.renewal.expansion_every_days) == (2, 90)
    team = policy.team_promotion
    assert team.step is not None and team.step.category == "marketing"
    assert (team.min_seats, team.fact, team.plans, team.tier) == (
        3, "invited_teammate", ["starter", "professional"], "business")
    assert (team.trial_grace_days, team.recent_days, team.skip_stages) == (3, 90, ["past_due"])


def test_a_policy_without_the_sections_has_no_reminders_and_no_offers() -> None:
    policy = parse_policy({})
    assert policy.renewal.reminders == [] and policy.renewal.expansion is None
    assert policy.team_promotion.step is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"renewal": {"reminders": [{"name": "r", "template": "t"}]}}, "days_before_end must be positive"),
        ({"renewal": {"remindrs": []}}, "renewal: unknown key(s) ['remindrs']"),
        ({"renewal": {"expansion_periods": 0}}, "renewal.expansion_periods"),
        ({"renewal": {"expansion_every_days": "often"}}, "renewal.expansion_every_days"),
        ({"renewal": {"expansion": {"name": "x"}}}, "renewal.expansion.template"),
        ({"renewal": {"skip_stages": "past_due"}}, "renewal.skip_stages"),
        ({"team_promotion": {"min_seats": 0}}, "team_promotion.min_seats"),
        ({"team_promotion": {"tier": ""}}, "team_promotion.tier: required text"),
        ({"team_promotion": {"seats": 3}}, "team_promotion: unknown key(s) ['seats']"),
        ({"team_promotion": {"step": {"name": "p", "template": "t", "category": "promo"}}}, "category"),
    ],
)
def test_a_malformed_section_is_refused_with_the_key_named(raw: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy(raw, source="campaigns.toml")
    assert message in str(err.value) and str(err.value).startswith("campaigns.toml: ")


def month(i: int) -> tuple[datetime, datetime]:
    return T0 + timedelta(days=30 * i), T0 + timedelta(days=30 * (i + 1))


def test_high_periods_count_back_to_back_only() -> None:
    r = GrowthState()
    assert r.remember_high_period(*month(0)) and not r.remember_high_period(*month(0))
    assert r.consecutive_high_periods(month(0)[0]) == 1
    r.remember_high_period(*month(2))  # a gap: month 1 was not high
    assert r.consecutive_high_periods(month(2)[0]) == 1
    r.remember_high_period(*month(1))  # heard late: now three in a row
    assert r.consecutive_high_periods(month(2)[0]) == 3
    assert r.consecutive_high_periods(T0 - timedelta(days=1)) == 0  # never high


def test_a_period_without_a_known_end_is_adjacent_to_one_starting_within_32_days() -> None:
    r = GrowthState()
    r.remember_high_period(T0, None)
    r.remember_high_period(T0 + timedelta(days=31), None)
    r.remember_high_period(T0 + timedelta(days=100), None)
    assert r.consecutive_high_periods(T0 + timedelta(days=31)) == 2
    assert r.consecutive_high_periods(T0 + timedelta(days=100)) == 1


def test_only_the_last_periods_are_kept() -> None:
    r = GrowthState()
    for i in range(20):
        r.remember_high_period(*month(i))
    assert [p.start for p in r.high_periods] == [month(i)[0] for i in range(14, 20)]


def test_money_reads_as_a_customer_reads_it() -> None:
    assert (money(49000), money(44150), money(199000), money(1000, "eur")) == (
        "$490", "$441.50", "$1,990", "€10")


def test_a_reminder_without_mirror_facts_states_the_tiers_price_and_the_card_on_file() -> None:
    step = EmailStep(name="renewal_7_days", template="renewal_reminder", days_before_end=7)
    inp = RenewalInput("c", datetime(2027, 3, 14, 9, tzinfo=UTC), "business", "year", [step],
                       tiers=tiers_from_catalog())
    known = reminder_context(inp, step, RenewalTerms(amount_cents=89100, card="Visa ending 4242"))["renewal"]
    unknown = reminder_context(inp, step, RenewalTerms())["renewal"]
    assert (known["amount"], known["card"], known["card_known"]) == ("$891", "Visa ending 4242", True)  # type: ignore[index]
    assert (unknown["amount"], unknown["card"], unknown["card_known"]) == ("$990", "your card on file", False)  # type: ignore[index]
    assert (unknown["date"], unknown["days_left"], unknown["plan_name"]) == ("March 14, 2027", 7, "Business")  # type: ignore[index]
