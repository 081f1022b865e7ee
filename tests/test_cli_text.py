"""The one helper that makes customer-supplied text safe for the ops terminal."""

from __future__ import annotations

import pytest

from starter.cli.text import console, plain, safe


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b]8;;https://evil.example\x07click\x1b]8;;\x07", "click"),  # OSC 8 ended by BEL
        ("\x1b]8;;https://evil.example\x1b\\click", "click"),  # ... by ST
        ("Ops\x1b]0;new window title", "Ops"),  # unterminated OSC: the rest is the sequence
        ("\x1b[2J\x1b[1;31mred\x1b[0m", "red"),  # CSI, with parameters
        ("\x9b2J\x9d8;;x\x9cOps", "Ops"),  # the 8-bit C1 forms
        ("\x1bPq#0;2;0;0;0\x1b\\Ops", "Ops"),  # DCS (sixel)
        ("a\x00b\x08c\x7fd\re\tf\ng", "abcdefg"),  # C0, DEL, CR, tab and line feed on one line
        ("admin\u202egpj.exe", "admingpj.exe"),  # bidi override
        ("Zoë 🙂 Müller", "Zoë 🙂 Müller"),  # ordinary text is left alone
    ],
)
def test_plain_removes_sequences_and_controls(raw: str, shown: str) -> None:
    assert plain(raw) == shown


def test_multiline_keeps_lines_and_tabs_only() -> None:
    assert plain("Hi\r\n\tthere\x1b[31m\rX", multiline=True) == "Hi\n\tthereX"


@pytest.mark.parametrize("raw", ["[/]Ops", "[link=https://evil.example]x[/link]", "[bold]b", "ends in \\",
                                 ":warning: VIP"])
def test_safe_text_prints_exactly_as_typed(raw: str) -> None:
    out = console()
    with out.capture() as captured:
        out.print(f"[bold]name:[/bold] [red]{safe(raw)}[/red]")
    assert captured.get() == f"name: {raw}\n"
