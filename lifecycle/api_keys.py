"""API keys with names and scopes (``LIFECYCLE_API_KEYS``).

Entries are separated by commas; each is ``name:key[:scope]``, and the scope names that
follow it (comma-separated, as ``ops:k3y:ops,read``) belong to it. Scopes: ``events``
(signup, activation, card, email preferences), ``usage`` (usage events, checks,
entitlements), ``billing`` (subscriptions), ``ops`` (actions on customers), ``read``
(the customer view). ``name:key`` with no scope, and the old bare ``key``, may do
everything in development only: production-like settings refuse them at start, and
keys shorter than 32 characters (lifecycle.settings.refuse_unsafe_start). The name is who did it in the audit trail. A key may not contain ``:`` or
``,``, and a bare key may not be a scope's name.
"""

from __future__ import annotations

from dataclasses import dataclass

SCOPES = ("events", "usage", "billing", "ops", "read")


@dataclass(frozen=True)
class ApiKey:
    name: str
    key: str
    scopes: frozenset[str]
    scoped: bool = True  # False: listed without scopes, so it got every scope (development only)

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


def parse_api_keys(entries: list[str]) -> list[ApiKey]:
    """The keys of the setting's entries (each may still hold commas); ValueError names a
    bad entry."""
    keys: list[ApiKey] = []
    scoped: list[str] | None = None  # the scope list the previous entry is still collecting
    bare = 0

    def close() -> None:
        nonlocal scoped
        if scoped is not None:
            last = keys.pop()
            keys.append(ApiKey(last.name, last.key, frozenset(scoped)))
        scoped = None

    for raw in [part for entry in entries for part in entry.split(",")]:
        entry = raw.strip()
        if not entry:
            continue
        if ":" not in entry:
            if scoped is not None and entry in SCOPES:
                scoped.append(entry)
                continue
            close()
            bare += 1
            keys.append(ApiKey(f"key-{bare}", entry, frozenset(SCOPES), scoped=False))
            continue
        close()
        parts = entry.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise ValueError(f"expected name:key[:scope,...], got {entry.split(':')[0]!r}:…")
        name, key = parts[0], parts[1]
        if len(parts) == 2:
            keys.append(ApiKey(name, key, frozenset(SCOPES), scoped=False))
            continue
        if parts[2] not in SCOPES:
            raise ValueError(f"key {name!r}: unknown scope {parts[2]!r}; expected one of {', '.join(SCOPES)}")
        keys.append(ApiKey(name, key, frozenset()))
        scoped = [parts[2]]
    close()
    names = [k.name for k in keys]
    if len(set(names)) != len(names):
        raise ValueError("two keys have the same name: the audit trail could not tell them apart")
    return keys
