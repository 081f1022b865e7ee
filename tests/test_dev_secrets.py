"""``lifecycle dev`` makes its own random secrets once, keeps them private, and reuses them."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from lifecycle.settings import (
    UNSAFE_LINK_SECRET,
    UNSAFE_UNSUBSCRIBE_SECRET,
    Settings,
    load_settings,
    refuse_unsafe_start,
    unsafe_settings,
)
from starter.dev.secrets import load_dev_secrets
from starter.dev.stack import _stack_environment


def _defaults(**overrides: object) -> Settings:
    return load_settings(_env_file=None, **overrides)


def test_the_secrets_are_made_once_readable_only_by_their_owner_and_reused(tmp_path: Path) -> None:
    made = load_dev_secrets(tmp_path)
    path = tmp_path / "dev_secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for value in (made.link_secret, made.unsubscribe_secret, made.stripe_webhook_secret, made.api_key):
        assert len(value) >= 32
    assert made.link_secret != UNSAFE_LINK_SECRET and made.unsubscribe_secret != UNSAFE_UNSUBSCRIBE_SECRET
    assert json.loads(path.read_text())["link_secret"] == made.link_secret
    # the next start reads the same ones back (links already mailed keep working)
    assert load_dev_secrets(tmp_path) == made
    # another checkout makes its own
    other = load_dev_secrets(tmp_path / "other")
    assert other.link_secret != made.link_secret and other.api_key != made.api_key


def test_a_damaged_file_is_made_again_and_the_old_api_key_is_kept(tmp_path: Path) -> None:
    (tmp_path / "dev_api_key").write_text("dev_" + "a" * 32 + "\n")
    (tmp_path / "dev_secrets.json").write_text("{not json")
    made = load_dev_secrets(tmp_path)
    assert made.api_key == "dev_" + "a" * 32
    assert load_dev_secrets(tmp_path) == made


@pytest.mark.parametrize("demo", [False, True])
def test_the_stack_runs_with_its_own_secrets_and_private_webhooks(tmp_path: Path, demo: bool) -> None:
    made = load_dev_secrets(tmp_path)
    env, settings = _stack_environment(_defaults(), made, use_localstripe=True, demo=demo, day_seconds=5)
    assert env["LIFECYCLE_LINK_SECRET"] == made.link_secret == settings.link_secret
    assert env["LIFECYCLE_UNSUBSCRIBE_SECRET"] == made.unsubscribe_secret == settings.unsubscribe_secret
    assert env["LIFECYCLE_STRIPE_WEBHOOK_SECRET"] == made.stripe_webhook_secret
    assert settings.stripe_webhook_secret.get_secret_value() == made.stripe_webhook_secret
    assert env["LIFECYCLE_WEBHOOK_ALLOW_PRIVATE"] == "true"
    # what the processes read from that environment has no weak secret at all
    processes = _defaults(**{k[len("LIFECYCLE_"):].lower(): v for k, v in env.items()
                             if k.startswith("LIFECYCLE_") and k != "LIFECYCLE_API_KEYS"},
                          api_keys=env["LIFECYCLE_API_KEYS"].split(","))
    assert unsafe_settings(processes) == []
    assert processes.api_key_grants[0].key == made.api_key


def test_configured_secrets_win_and_real_stripe_needs_its_own_webhook_secret(tmp_path: Path) -> None:
    made = load_dev_secrets(tmp_path)
    mine = "m" * 40
    real = _defaults(link_secret=mine, stripe_api_key=SecretStr("sk_test_real"))
    env, settings = _stack_environment(real, made, use_localstripe=False, demo=False, day_seconds=5)
    assert "LIFECYCLE_LINK_SECRET" not in env or env["LIFECYCLE_LINK_SECRET"] == mine
    assert settings.link_secret == mine
    assert env.get("LIFECYCLE_STRIPE_WEBHOOK_SECRET") != made.stripe_webhook_secret
    # real Stripe is production-like: the stack's processes would refuse, naming the secret
    with pytest.raises(Exception, match="LIFECYCLE_STRIPE_WEBHOOK_SECRET is unset"):
        refuse_unsafe_start(settings)
