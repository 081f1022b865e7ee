"""Validated string types for the HTTP edge, and the guard for path and query parameters.

Every string the API takes is one of these: bounded in length, and free of NUL, other
C0 control characters and lone surrogates (see :mod:`lifecycle.text`), so bad input is a
422 naming the field, never a 500 from the database or the JSON encoder.

Path parameters: ``customer_id`` in a path is 1-128 characters of such text (422 naming
``customer_id`` otherwise); an id that names no customer is a 404. It is deliberately not
held to the signup pattern, so a customer adopted from Stripe under its Stripe id stays
reachable.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, Field, StringConstraints

from lifecycle.email.amounts import check_time_zone
from lifecycle.text import check_text, unsafe_reason

CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"
FACT_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
# What the JSON schema says about every free string (lone surrogates cannot be expressed).
NO_CONTROLS = r"^[^\u0000-\u001f\u007f]*$"
NO_CONTROLS_FREE_TEXT = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]*$"


def _line(v: str) -> str:
    return check_text(v)


def _free(v: str) -> str:
    return check_text(v, free_text=True)


def Text(max_length: int, *, min_length: int = 0, free_text: bool = False) -> Any:  # noqa: N802
    """A string of at most ``max_length`` characters without control characters (tab,
    newline and carriage return allowed when ``free_text``) or lone surrogates."""
    return Annotated[
        str,
        StringConstraints(min_length=min_length, max_length=max_length),
        AfterValidator(_free if free_text else _line),
        Field(json_schema_extra={"pattern": NO_CONTROLS_FREE_TEXT if free_text else NO_CONTROLS}),
    ]


CustomerId = Annotated[
    str, StringConstraints(pattern=CUSTOMER_ID_PATTERN), Field(description="the product's own customer id")
]
Fact = Annotated[str, StringConstraints(pattern=FACT_PATTERN)]
Email = Text(320, min_length=3)
Name = Text(200)
EventId = Text(200, min_length=1)
PaymentMethodId = Text(200, min_length=1)
# an IANA name (Europe/Berlin), checked with zoneinfo: emails show dates on this clock
TimeZoneName = Annotated[Text(64, min_length=1), AfterValidator(check_time_zone)]
CustomerIdPath = Annotated[
    str,
    Path(min_length=1, max_length=128, description="the customer's id",
         json_schema_extra={"pattern": NO_CONTROLS}),
    AfterValidator(_line),
]

# --- signup attributes --------------------------------------------------------------------

MAX_ATTRIBUTES_BYTES = 16 * 1024  # serialized as compact JSON
MAX_ATTRIBUTES_DEPTH = 4  # {"a": {"b": {"c": {"d": 1}}}} is 4 deep
MAX_ATTRIBUTES_KEYS = 200  # keys in all, nested ones included
MAX_ATTRIBUTE_KEY_LENGTH = 100


def _walk(value: Any, depth: int, counter: list[int], path: str) -> None:
    if isinstance(value, dict):
        if depth >= MAX_ATTRIBUTES_DEPTH:
            raise ValueError(f"nested deeper than {MAX_ATTRIBUTES_DEPTH} levels at {path or 'the top'}")
        for key, item in value.items():
            counter[0] += 1
            if counter[0] > MAX_ATTRIBUTES_KEYS:
                raise ValueError(f"more than {MAX_ATTRIBUTES_KEYS} keys")
            if len(key) > MAX_ATTRIBUTE_KEY_LENGTH:
                raise ValueError(f"key {key[:40]!r}… is longer than {MAX_ATTRIBUTE_KEY_LENGTH} characters")
            reason = unsafe_reason(key)
            if reason:
                raise ValueError(f"key {key[:40]!r} {reason}")
            _walk(item, depth + 1, counter, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        if depth >= MAX_ATTRIBUTES_DEPTH:
            raise ValueError(f"nested deeper than {MAX_ATTRIBUTES_DEPTH} levels at {path or 'the top'}")
        for i, item in enumerate(value):
            _walk(item, depth + 1, counter, f"{path}[{i}]")
    elif isinstance(value, str):
        reason = unsafe_reason(value, free_text=True)
        if reason:
            raise ValueError(f"{path}: {reason}")


def check_attributes(value: dict[str, Any]) -> dict[str, Any]:
    _walk(value, 0, [0], "")
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > MAX_ATTRIBUTES_BYTES:
        raise ValueError(f"{size:,} bytes of JSON; at most {MAX_ATTRIBUTES_BYTES:,}")
    return value


Attributes = Annotated[
    dict[str, Any],
    AfterValidator(check_attributes),
    Field(
        description=f"your own data about the customer: at most {MAX_ATTRIBUTES_BYTES:,} bytes of JSON, "
        f"{MAX_ATTRIBUTES_KEYS} keys, {MAX_ATTRIBUTES_DEPTH} levels deep"
    ),
]


# --- path and query parameters of every route -------------------------------------------


def safe_params(request: Request) -> None:
    """A router dependency: any path or query parameter with a control character or a lone
    surrogate is a 422 naming it, before the route (or the database) sees it."""
    errors = []
    for where, params in (("path", request.path_params), ("query", request.query_params)):
        for name, value in params.items():
            if isinstance(value, str):
                reason = unsafe_reason(value)
                if reason:
                    errors.append({"type": "string_unsafe", "loc": (where, name), "msg": reason,
                                   "input": value})
    if errors:
        raise RequestValidationError(errors)
