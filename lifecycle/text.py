"""What text the engine accepts at its edge, and JSON that never fails to encode.

PostgreSQL refuses a NUL byte in ``text``/``varchar`` (and ``\\u0000`` in JSON), and a
lone UTF-16 surrogate (``"\\ud800"`` in JSON) cannot be encoded as UTF-8 at all: both
used to surface as a 500 from deep inside a route. Every string that comes in over HTTP
is checked here first, so the caller gets a 422 naming the field instead.
"""

from __future__ import annotations

import re
from typing import Any

# C0 controls and DEL; free text may keep tab, newline and carriage return.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_FREE_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def unsafe_reason(value: str, *, free_text: bool = False) -> str | None:
    """Why ``value`` cannot be stored, or None when it can."""
    bad = (_CONTROL_FREE_TEXT if free_text else _CONTROL).search(value)
    if bad is not None:
        char = bad.group()
        what = "a NUL byte" if char == "\x00" else f"a control character (U+{ord(char):04X})"
        return f"contains {what} at position {bad.start()}"
    bad = _SURROGATE.search(value)
    if bad is not None:
        return f"contains a lone surrogate (U+{ord(bad.group()):04X}) at position {bad.start()}; not valid Unicode"
    return None


def check_text(value: str, *, free_text: bool = False) -> str:
    """``value`` itself, or ValueError saying what is wrong with it (pydantic turns it into a 422)."""
    reason = unsafe_reason(value, free_text=free_text)
    if reason is not None:
        raise ValueError(reason)
    return value


def json_safe(value: Any) -> Any:
    """``value`` with every lone surrogate replaced by U+FFFD, so it always encodes as UTF-8 JSON.

    Used for error bodies, which echo what the caller sent."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
