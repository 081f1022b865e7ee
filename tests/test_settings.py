"""Settings: defaults that run locally, and errors that name the variable."""

from __future__ import annotations

import pytest

from lifecycle.settings import SettingsError, load_settings


def test_defaults_run_the_embedded_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LIFECYCLE_DATABASE_URL", "LIFECYCLE_TEMPORAL_ADDRESS", "LIFECYCLE_API_KEYS"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings(_env_file=None)
    assert s.database_url.startswith("sqlite:///") and s.database_url.endswith(".data/lifecycle.db")
    assert s.temporal_address == "127.0.0.1:7233"
    assert s.email_provider == "outbox"
    assert s.policy_path.name == "campaigns.toml"


def test_api_keys_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFECYCLE_API_KEYS", " one, two ,,three")
    assert load_settings(_env_file=None).api_keys == ["one", "two", "three"]


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("LIFECYCLE_TEMPORAL_ADDRESS", "no-port", "host:port"),
        ("LIFECYCLE_DATABASE_URL", "mysql://x", "sqlite"),
        ("LIFECYCLE_EMAIL_PROVIDER", "pigeon", "outbox"),
        ("LIFECYCLE_DAY_SECONDS", "-1", "greater than 0"),
    ],
)
def test_an_invalid_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as err:
        load_settings(_env_file=None)
    assert var in str(err.value)
    assert expected in str(err.value)


def test_postgres_urls_get_the_psycopg_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFECYCLE_DATABASE_URL", "postgresql://postgres@db/lifecycle")
    assert load_settings(_env_file=None).database_url == "postgresql+psycopg://postgres@db/lifecycle"
