"""LIFECYCLE_API_KEYS: named keys with scopes, the old bare form, and what is refused at start."""

from __future__ import annotations

import pytest

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

