"""Settings: defaults that run locally, and errors that name the variable."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from lifecycle.settings import (
    PROJECT_ROOT,
    UNSAFE_LINK_SECRET,
    UNSAFE_UNSUBSCRIBE_SECRET,
    Settings,
    SettingsError,
    load_settings,
    production_reasons,
)
from lifecycle.webhooks.addresses import development


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


# --- production-like settings refuse default and short secrets ---------------------------

STRONG = "s" * 32
SAFE_SECRETS: dict[str, object] = {
    "link_secret": "l" * 32,
    "unsubscribe_secret": "u" * 32,
    "stripe_webhook_secret": SecretStr("whsec_" + "w" * 32),
    "api_keys": [f"product:{'k' * 32}:events,usage"],
}


def _settings(**overrides: object) -> Settings:
    return load_settings(_env_file=None, **overrides)


def test_one_rule_says_what_is_production_like(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIFECYCLE_PUBLIC_URL", raising=False)
    dev = _settings()
    assert production_reasons(dev) == [] and production_reasons(dev, "127.0.0.1") == []
    assert production_reasons(dev, "::1") == [] and production_reasons(dev, "localhost") == []
    assert development(dev)
    # localstripe (a key and an API base) stays development
    assert production_reasons(_settings(stripe_api_key=SecretStr("sk_test_x"),
                                        stripe_api_base="http://127.0.0.1:8420")) == []
    cases = {
        "live key": (_settings(stripe_api_key=SecretStr("sk_live_x"), stripe_api_base="http://127.0.0.1:1"), None),
        "restricted live key": (_settings(stripe_api_key=SecretStr("rk_live_x")), None),
        "real Stripe": (_settings(stripe_api_key=SecretStr("sk_test_x")), None),
        "real Stripe by its address": (_settings(stripe_api_key=SecretStr("sk_test_x"),
                                                 stripe_api_base="https://api.stripe.com"), None),
        "smtp": (_settings(email_provider="smtp", unsubscribe_secret=STRONG), None),
        "bound beyond loopback": (dev, "0.0.0.0"),
        "public url": (_settings(public_url="https://lifecycle.example.com"), None),
    }
    for what, (settings, host) in cases.items():
        reasons = production_reasons(settings, host)
        assert len(reasons) == 1, what
        if host is None:
            assert not development(settings), what  # the webhook rules ask the same rule
    assert "0.0.0.0" in production_reasons(dev, "0.0.0.0")[0]
    assert "LIFECYCLE_PUBLIC_URL" in production_reasons(cases["public url"][0])[0]


def test_the_api_refuses_production_like_settings_with_default_or_short_secrets() -> None:
    from starter.api.app import create_app

    live = {"stripe_api_key": SecretStr("sk_live_x")}
    with pytest.raises(SettingsError) as err:
        create_app(_settings(**live))
    message = str(err.value)
    for var in ("LIFECYCLE_LINK_SECRET", "LIFECYCLE_UNSUBSCRIBE_SECRET", "LIFECYCLE_STRIPE_WEBHOOK_SECRET"):
        assert var in message
    assert "LIFECYCLE_STRIPE_API_KEY is a live key" in message
    # one short secret among strong ones: named, and only it
    with pytest.raises(SettingsError) as err:
        create_app(_settings(**live, **{**SAFE_SECRETS, "link_secret": "x" * 31}))
    assert "LIFECYCLE_LINK_SECRET is 31 bytes" in str(err.value)
    assert "UNSUBSCRIBE" not in str(err.value)
    # strong secrets: it starts; development settings with defaults start too
    create_app(_settings(**live, **SAFE_SECRETS))
    create_app(_settings())


async def test_the_worker_refuses_before_connecting_to_anything() -> None:
    from worker import run_worker

    accepted: list[object] = []

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = _settings(
        email_provider="smtp", smtp_host="127.0.0.1", smtp_port=port, temporal_address=f"127.0.0.1:{port}",
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/test", unsubscribe_secret=STRONG,
    )
    async with server:
        with pytest.raises(SettingsError) as err:
            await asyncio.wait_for(run_worker(settings), timeout=10)
        await asyncio.sleep(0.2)
    assert "LIFECYCLE_LINK_SECRET is the public development default" in str(err.value)
    assert "LIFECYCLE_EMAIL_PROVIDER=smtp" in str(err.value)
    assert accepted == []  # neither Temporal, the database nor SMTP was reached


def test_lifecycle_api_checks_the_host_it_is_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from starter.cli.app import app

    monkeypatch.chdir(tmp_path)  # no .env
    for var in [v for v in os.environ if v.startswith("LIFECYCLE_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("LIFECYCLE_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    served: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: served.append(kw))
    refused = CliRunner().invoke(app, ["api", "--host", "0.0.0.0", "--port", "8999"])
    assert refused.exit_code == 2, refused.output
    assert "the API listens on 0.0.0.0" in refused.output and "LIFECYCLE_LINK_SECRET" in refused.output
    assert served == []
    local = CliRunner().invoke(app, ["api", "--host", "127.0.0.1", "--port", "8999"])
    assert local.exit_code == 0, local.output
    assert served and served[0]["host"] == "127.0.0.1"

    # lifecycle worker says the same on stderr and exits 2 (run_worker refuses before connecting)
    monkeypatch.setenv("LIFECYCLE_EMAIL_PROVIDER", "smtp")
    monkeypatch.setenv("LIFECYCLE_UNSUBSCRIBE_SECRET", STRONG)
    monkeypatch.setenv("LIFECYCLE_TEMPORAL_ADDRESS", "127.0.0.1:1")
    worker = CliRunner().invoke(app, ["worker"])
    assert worker.exit_code == 2, worker.output
    assert "the worker refuses to start" in worker.output and "LIFECYCLE_LINK_SECRET" in worker.output


# --- docs/operations.md lists every setting ------------------------------------------------

def _documented() -> dict[str, tuple[str, str]]:
    """The settings tables of docs/operations.md: variable -> (default cell, meaning cell)."""
    page = (PROJECT_ROOT / "docs" / "operations.md").read_text()
    section = page.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("| `") else []
        if not cells:
            continue
        assert len(cells) == 3, f"a settings row has three cells (variable, default, meaning): {line}"
        var = re.fullmatch(r"`(LIFECYCLE_[A-Z0-9_]+)`", cells[0])
        assert var, f"one variable per row: {cells[0]}"
        assert var.group(1) not in rows, f"{var.group(1)} is listed twice"
        rows[var.group(1)] = (cells[1], cells[2])
    return rows


def _shown_default(value: object) -> str:
    """How the page writes a default."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value in (None, "", [], {}):
        return "–"
    if value in (UNSAFE_LINK_SECRET, UNSAFE_UNSUBSCRIBE_SECRET):
        return "a development default"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(int(value)) if value == int(value) else str(value)
    if isinstance(value, dt.time):
        return f"`{value:%H:%M}`"
    return "`" + str(value).replace(str(PROJECT_ROOT), "<repo>") + "`"


def test_docs_operations_lists_every_setting_with_its_default() -> None:
    documented = _documented()
    fields = {f"LIFECYCLE_{name.upper()}": field for name, field in Settings.model_fields.items()}
    assert sorted(set(fields) - set(documented)) == [], "settings missing from docs/operations.md"
    assert sorted(set(documented) - set(fields)) == [], "docs/operations.md lists settings that do not exist"
    for var, field in fields.items():
        default = field.get_default(call_default_factory=True)
        cell, meaning = documented[var]
        assert cell.split(" (")[0] == _shown_default(default), f"{var}: the page says {cell!r}"
        assert meaning, f"{var}: no meaning"
