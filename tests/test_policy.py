"""The campaign policy is data marketers edit; a malformed file is refused with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifecycle.contracts.policy import PolicyError, load_policy, parse_policy
from lifecycle.settings import PROJECT_ROOT

DEFAULT = PROJECT_ROOT / "templates" / "campaigns.toml"


def test_default_policy_is_the_roadmaps_schedule() -> None:
    policy = load_policy(DEFAULT)
    assert policy.trial.length_days == 14
    assert sorted(r.days_before_end for r in policy.trial.reminders) == [1, 3]
    assert [(s.name, s.day) for s in policy.onboarding.steps] == [
        ("welcome", 0),
        ("tip_first_project", 1),
        ("tip_invite_team", 3),
        ("tip_api", 7),
    ]
    templates = {p.stem for p in (PROJECT_ROOT / "templates" / "email").glob("*.j2")}
    used = {r.template for r in policy.trial.reminders} | {s.template for s in policy.onboarding.steps}
    assert used <= templates, f"policy names templates that do not exist: {used - templates}"


def test_day_seconds_compresses_time() -> None:
    policy = load_policy(DEFAULT, day_seconds=2)
    assert policy.days(14).total_seconds() == 28


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"trial": {"length_days": 0}}, "trial.length_days"),
        ({"onboarding": {"steps": [{"name": "x"}]}}, "onboarding.steps[0].template"),
        ({"onboarding": {"steps": [{"name": "x", "template": "t", "dy": 1}]}}, "unknown key"),
        (
            {"trial": {"length_days": 2, "reminders": [{"name": "r", "template": "t", "days_before_end": 3}]}},
            "days_before_end",
        ),
        ({"onboarding": {"steps": [{"name": "x", "template": "t", "category": "spam"}]}}, "category"),
    ],
)
def test_malformed_policy_is_refused_naming_the_key(raw: dict, message: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy(raw, source="campaigns.toml")
    assert message in str(err.value)


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "campaigns.toml"
    bad.write_text("[trial\nlength_days = 14")
    with pytest.raises(PolicyError, match="campaigns.toml: not valid TOML"):
        load_policy(bad)


@pytest.mark.parametrize(
    ("amount", "interval", "count", "per_year", "per_month"),
    [
        (1900, "month", 1, 22800, 1900),
        (19000, "year", 1, 19000, 1583),
        (5700, "month", 3, 22800, 1900),  # quarterly: month x3, never read as monthly
        (10800, "month", 6, 21600, 1800),  # every six months
        (1000, "week", 1, 52000, 4333),
        (2000, "week", 2, 52000, 4333),
        (100, "day", 1, 36500, 3042),
        (38000, "year", 2, 19000, 1583),  # every two years
    ],
)
def test_amount_per_year_and_per_month_follow_the_period(
    amount: int, interval: str, count: int, per_year: int, per_month: int
) -> None:
    from lifecycle.contracts.catalog import known_period, per_month_cents, per_year_cents
    from lifecycle.contracts.tiers import tiers_from_catalog

    assert known_period(interval, count)
    assert per_year_cents(amount, interval, count) == per_year
    assert per_month_cents(amount, interval, count) == per_month
    starter = tiers_from_catalog().get("starter")
    # the tier's own prices on any period: yearly at the annual price, else the monthly rate;
    # one billing period's price follows the count; nothing raises
    assert starter.annual_cents(interval) == (19000 if interval == "year" else 22800)
    assert starter.period_cents(interval, count) == round(starter.annual_cents(interval) * count / {
        "day": 365, "week": 52, "month": 12, "year": 1}[interval])


def test_a_period_nobody_bills_is_named_not_reckoned() -> None:
    from lifecycle.contracts.catalog import known_period, per_year_cents

    assert not known_period("fortnight") and not known_period("month", 0) and not known_period(None)
    with pytest.raises(ValueError, match="unknown billing period 1 x 'fortnight'"):
        per_year_cents(1000, "fortnight")
