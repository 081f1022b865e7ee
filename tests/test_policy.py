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
