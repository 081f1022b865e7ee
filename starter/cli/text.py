"""Text from customers and other systems, made safe for the ops terminal.

Names, emails, subjects, timeline details, template output, Stripe ids and error
messages are data, never instructions to the terminal or to rich:

* :func:`plain` removes terminal escape sequences (CSI such as ``ESC [31m``, OSC such as
  the ``ESC ] 8`` hyperlink, DCS/APC/PM/SOS strings, their 8-bit C1 forms), every other C0
  and C1 control character and DEL, and the Unicode bidi controls that reorder what ops
  read. ``multiline=True`` keeps line feeds and tabs (email bodies).
* :func:`safe` is :func:`plain` and then ``rich.markup.escape``: for everything printed
  through rich (markup strings and table cells), so ``[/]`` or ``[link=…]`` print as typed.

:func:`console` builds the consoles the CLI prints with: no emoji codes (``:warning:``
in a name stays text).
"""

from __future__ import annotations

import re

from rich.console import Console
from rich.markup import escape

_SEQUENCE = re.compile(
    r"""
      (?:\x1b\[|\x9b) [0-?]* [ -/]* [@-~]                          # CSI … final byte
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]) .*? (?:\x07|\x1b\\|\x9c|\Z)  # OSC, DCS, SOS, PM, APC … terminator
    | \x1b [ -/]* [0-~]                                             # any other escape
    """,
    re.VERBOSE | re.DOTALL,
)
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_CONTROL_KEEP_LINES = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")


def plain(value: object, *, multiline: bool = False) -> str:
    """``value`` as text without escape sequences or control characters."""
    text = _SEQUENCE.sub("", "" if value is None else str(value))
    if multiline:
        return _CONTROL_KEEP_LINES.sub("", text.replace("\r\n", "\n"))
    return _CONTROL.sub("", text)


def safe(value: object, *, multiline: bool = False) -> str:
    """``value`` ready to go into rich markup or a table cell: printed exactly as it reads."""
    return escape(plain(value, multiline=multiline))


def console(*, stderr: bool = False) -> Console:
    return Console(stderr=stderr, emoji=False)
