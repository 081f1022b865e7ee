"""LIFECYCLE_API_KEYS: named keys with scopes, the old bare form, and what is refused at start."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from lifecycle.api_keys import SCOPES, ApiKey, parse_api_keys
from lifecycle.settings import SettingsError, load_settings


def test_named_keys_take_the_scopes_that_follow_them() -> None:
    keys = parse_api_keys("support:k1:ops,read,product:k2:events,usage,finance:k3:billing".split(","))
    assert keys == [
        ApiKey("support", "k1", frozenset({"ops", "read"})),
        ApiKey("product", "k2", frozenset({"events", "usage"})),
        ApiKey("finance", "k3", frozenset({"billing"})),
    ]


def test_the_bare_form_and_a_name_without_scopes_may_do_everything() -> None:
    keys = parse_api_keys(["old-key", "ci:k2", "another-old-key"])
    assert [(k.name, k.key) for k in keys] == [("key-1", "old-key"), ("ci", "k2"), ("key-2", "another-old-key")]
    assert all(k.scopes == frozenset(SCOPES) for k in keys)


def test_a_bare_key_after_a_scoped_entry_is_a_key_of_its_own() -> None:
    keys = parse_api_keys(["ops:k1:ops", "read", "plainkey"])
    assert keys[0].scopes == frozenset({"ops", "read"})
    assert (keys[1].name, keys[1].key, keys[1].scopes) == ("key-1", "plainkey", frozenset(SCOPES))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a:k1:bogus", "unknown scope 'bogus'"),
        ("a:k1:ops,a:k2:read", "same name"),
        (":k1", "expected name:key"),
        ("a::ops", "expected name:key"),
        ("a:b:c:d", "expected name:key"),
    ],
)
def test_a_bad_entry_stops_the_process_naming_the_variable(value: str, message: str) -> None:
    with pytest.raises(SettingsError, match="LIFECYCLE_API_KEYS") as info:
        load_settings(api_keys=value, _env_file=None)
    assert message in str(info.value)



LIVE = {"stripe_api_key": SecretStr("sk_live_x"), "link_secret": "l" * 32, "unsubscribe_secret": "u" * 32,
        "stripe_webhook_secret": SecretStr("whsec_" + "w" * 32)}
LONG = "k" * 32


@pytest.mark.parametrize("entry", [f"product:{LONG}", LONG])
def test_a_key_without_scopes_is_refused_at_start_outside_development(entry: str) -> None:
    from starter.api.app import create_app

    with pytest.raises(SettingsError) as err:
        create_app(load_settings(api_keys=[entry], _env_file=None, **LIVE))
    message = str(err.value)
    assert "LIFECYCLE_API_KEYS" in message and "lists no scopes" in message
    assert "events, usage, billing, ops, read" in message  # the scopes that exist
    create_app(load_settings(api_keys=[entry], _env_file=None))  # development: every scope, as before
    create_app(load_settings(api_keys=[f"product:{LONG}:events,usage"], _env_file=None, **LIVE))


def test_a_short_bearer_key_is_refused_outside_development() -> None:
    from starter.api.app import create_app

    short = "product:" + "k" * 31 + ":events"
    with pytest.raises(SettingsError) as err:
        create_app(load_settings(api_keys=[short, f"ops:{LONG}:ops"], _env_file=None, **LIVE))
    assert "key 'product' is 31 characters; bearer keys need at least 32" in str(err.value)
    assert "'ops'" not in str(err.value)
