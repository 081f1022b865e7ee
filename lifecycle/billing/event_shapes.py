"""A Stripe webhook event as the engine accepts it: bounded ids, types, times and depth
checked before any of it is stored (:func:`parse_event`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lifecycle.billing.shapes import (
    ShapeError,
    as_bool,
)


@dataclass(frozen=True)
class EventRec:
    id: str
    type: str
    created: int
    livemode: bool
    api_version: str | None
    object: dict[str, Any]
    previous_attributes: dict[str, Any]

    @property
    def object_type(self) -> str | None:
        return self.object.get("object")



# What a webhook event may look like before the engine stores any of it. Stripe's ids are
# at most 255 characters (letters, digits, ``_``; ``-``, ``.``, ``:`` tolerated for ids made
# by tests and tools); event types are dotted lower-case words.
MAX_ID = 255
MAX_TYPE = 100
_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,255}")
_TYPE_RE = re.compile(r"[a-z0-9_.]{1,100}")
_API_VERSION_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# Seconds since the epoch a datetime (and a BIGINT) can hold: up to 9999-12-31.
MAX_EPOCH = 253402300799
MAX_DEPTH = 64


def _check_strings(value: Any, where: str = "event") -> None:
    """Refuse what the database cannot store: NUL characters (PostgreSQL refuses them in
    text and JSON), unpaired surrogates (not UTF-8), and absurd nesting. Iterative, so a
    hostile payload cannot exhaust the stack."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ShapeError(f"{path}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, str):
            _check_text(item, path)
        elif isinstance(item, Mapping):
            for k, v in item.items():
                key = str(k)
                _check_text(key, f"{path} (a key)")
                stack.append((v, f"{path}.{key[:40]}", depth + 1))
        elif isinstance(item, list | tuple):
            for i, v in enumerate(item):
                stack.append((v, f"{path}[{i}]", depth + 1))


def _check_text(text: str, path: str) -> None:
    if "\x00" in text:
        raise ShapeError(f"{path}: contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ShapeError(f"{path}: not valid UTF-8 (an unpaired surrogate)") from None


def _event_id(value: Any) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        shown = repr(value)[:60]
        raise ShapeError(
            f"event 'id': expected up to {MAX_ID} letters, digits or _.:- characters, got {shown}"
        )
    return value


def _event_type(value: Any) -> str:
    if not isinstance(value, str) or not _TYPE_RE.fullmatch(value):
        shown = repr(value)[:60]
        raise ShapeError(f"event 'type': expected up to {MAX_TYPE} characters of a-z 0-9 _ ., got {shown}")
    return value


def _event_created(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ShapeError(f"event 'created': expected epoch seconds (an integer), got {repr(value)[:40]}")
    if not 0 < value <= MAX_EPOCH:
        raise ShapeError(f"event 'created': {str(value)[:40]} is not a time (0 < created <= {MAX_EPOCH})")
    return value


def parse_event(payload: Any) -> EventRec:
    """An event as received; every field the engine reads or stores is checked first
    (a ShapeError names the field), so nothing the database or the mirror cannot take
    is ever recorded."""
    if not isinstance(payload, Mapping):
        raise ShapeError(f"not an event object: a JSON {type(payload).__name__}, expected an object")
    if payload.get("object") not in (None, "event"):
        raise ShapeError(f"not an event object: object={str(payload.get('object'))[:40]!r}")
    _check_strings(payload)
    data = payload.get("data")
    if not isinstance(data, Mapping) or not isinstance(data.get("object"), Mapping):
        raise ShapeError("event has no 'data.object'")
    previous = data.get("previous_attributes")
    if previous is not None and not isinstance(previous, Mapping):
        raise ShapeError("event 'data.previous_attributes': expected an object")
    livemode = payload.get("livemode", False)
    if not isinstance(livemode, bool) and livemode not in ("true", "false", None):
        raise ShapeError(f"event 'livemode': expected a boolean, got {repr(livemode)[:40]}")
    api_version = payload.get("api_version")
    if api_version is not None and (
        not isinstance(api_version, str) or not _API_VERSION_RE.fullmatch(api_version)
    ):
        raise ShapeError(f"event 'api_version': expected a version such as 2026-10-28.endive, got {repr(api_version)[:40]}")
    if payload.get("id") in (None, ""):
        raise ShapeError("event has no 'id'")
    if payload.get("type") in (None, ""):
        raise ShapeError("event has no 'type'")
    if payload.get("created") in (None, ""):
        raise ShapeError("event has no 'created'")
    return EventRec(
        id=_event_id(payload["id"]),
        type=_event_type(payload["type"]),
        created=_event_created(payload["created"]),
        livemode=as_bool(livemode or False),
        api_version=api_version,
        object=dict(data["object"]),
        previous_attributes=dict(previous or {}),
    )
