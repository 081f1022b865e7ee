"""The `lifecycle` command line, run as a user runs it (a subprocess of the installed script)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lifecycle.models import EmailMessage, LifecycleEvent, Subscription
from lifecycle.settings import Settings
from lifecycle.usage import UsageService
from tests.support.helpers import add_customer

CLI = str(Path(sys.prefix) / "bin" / "lifecycle")


def run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIFECYCLE_DATABASE_URL": settings.database_url, "COLUMNS": "200"}
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", [[], ["dev"], ["worker"], ["api"], ["db"], ["db", "upgrade"], ["customer", "show"]])
def test_every_command_has_help(settings: Settings, command: list[str]) -> None:
    result = run(settings, *command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_customer_show_prints_stage_timeline_emails_and_the_ui_link(settings: Settings, session_factory) -> None:
    add_customer(session_factory, "cli-1")
    now = datetime.now(UTC)
    with session_factory() as s:
        s.add(LifecycleEvent(event_key="k1", customer_id="cli-1", kind="stage_changed", from_stage=None,
                             to_stage="trialing", detail={"cause": "signup"}, occurred_at=now))
        s.add(EmailMessage(idempotency_key="e1", customer_id="cli-1", campaign="onboarding", step="welcome",
                           template="welcome", to_address="a@b.test", from_address="x@y.test",
                           subject="Welcome aboard, Ada", html="<p>", text="hi", provider="outbox",
                           status="sent", sent_at=now))
        s.commit()
    with session_factory() as s:
        s.add(Subscription(stripe_subscription_id="sub_cli", customer_id="cli-1", plan_code="business",
                           interval="month", amount_cents=9900, status="active",
                           current_period_end=now + dt.timedelta(days=30)))
        s.commit()
    UsageService(session_factory).ingest(
        [{"customer_id": "cli-1", "metric": "ai_requests", "quantity": 420, "idempotency_key": "u1"}]
    )
    result = run(settings, "customer", "show", "cli-1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "subscription: business monthly $99, active" in out
    assert "ai_requests" in out and "420" in out
    assert "stage - → trialing" in out
    assert "Welcome aboard, Ada" in out
    assert "/namespaces/default/workflows/customer-cli-1" in out


def test_customer_show_unknown_customer_fails_clearly(settings: Settings) -> None:
    result = run(settings, "customer", "show", "nobody")
    assert result.returncode == 1
    assert "unknown customer 'nobody'" in result.stdout


def test_invalid_setting_fails_at_start_naming_the_variable(settings: Settings) -> None:
    env = {**os.environ, "LIFECYCLE_TEMPORAL_ADDRESS": "nowhere"}
    result = subprocess.run([CLI, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "LIFECYCLE_TEMPORAL_ADDRESS" in result.stderr  # errors go to stderr


# --- customer-supplied text cannot steer the ops terminal ------------------------------------

ESC = "\x1b"
HOSTILE_NAMES = [
    "[/]Ops",  # rich markup: a closing tag with nothing open crashed the command
    "[link=https://evil.example]x[/link]",  # rich markup: would print a hyperlink
    f"{ESC}]8;;http://x{ESC}\\Ops{ESC}]8;;{ESC}\\ {ESC}[31mred{ESC}[0m\x07\x9b2J",  # raw OSC 8, SGR, BEL, C1 CSI
]


def run_plain(settings: Settings, *args: str, colour: bool = False) -> subprocess.CompletedProcess[str]:
    """As `run`, with colour as chosen: rich writes no escape codes of its own unless forced."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE")}
    env.update({"LIFECYCLE_DATABASE_URL": settings.database_url, "COLUMNS": "400"})
    if colour:
        env["FORCE_COLOR"] = "1"
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=60)


def _visible(name: str) -> str:
    """What ops should see of a name: every character but the control sequences."""
    return {
        HOSTILE_NAMES[0]: "[/]Ops",
        HOSTILE_NAMES[1]: "[link=https://evil.example]x[/link]",
        HOSTILE_NAMES[2]: "Ops red",
    }[name]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=["close-tag", "link-markup", "raw-escapes"])
def test_customer_and_outbox_show_print_hostile_text_literally(
    settings: Settings, session_factory, name: str
) -> None:
    add_customer(session_factory, "evil-1", name=name, email="evil@example.test")
    now = datetime.now(UTC)
    with session_factory() as s:
        s.add(LifecycleEvent(event_key="k1", customer_id="evil-1", kind="email_skipped",
                             detail={"reason": name}, campaign="onboarding", occurred_at=now))
        s.add(EmailMessage(idempotency_key="e1", customer_id="evil-1", campaign="onboarding",
                           step="welcome", template="welcome", to_address="evil@example.test",
                           from_address="x@y.test", subject=f"Welcome, {name}", html="<p>",
                           text=f"Hi {name},\nwelcome.", provider="outbox", status="failed",
                           error=f"rejected: {name}", headers={"To": f"{name} <evil@example.test>"},
                           sent_at=now))
        s.commit()
        message_id = str(s.query(EmailMessage.id).scalar())
    for args in (["customer", "show", "evil-1"], ["outbox", "show", message_id],
                 ["outbox", "list"]):
        result = run_plain(settings, *args)
        assert result.returncode == 0, (args, result.stdout + result.stderr)
        out = result.stdout
        assert ESC not in out and "\x07" not in out and "\x9b" not in out, (args, out)
        if args[1] != "list":  # list cuts the subject short
            assert _visible(name) in out, (args, out)
        # in a real terminal (colours on) rich styles the output, but prints no link
        coloured = run_plain(settings, *args, colour=True)
        assert coloured.returncode == 0
        assert f"{ESC}]8;" not in coloured.stdout and f"{ESC}[31mred" not in coloured.stdout
    show = run_plain(settings, "customer", "show", "evil-1").stdout
    assert f"reason={_visible(name)}" in show  # the timeline detail, too
    outbox = run_plain(settings, "outbox", "show", message_id).stdout
    assert f"Error: rejected: {_visible(name)}" in outbox and f"Hi {_visible(name)},\nwelcome." in outbox


def test_stripe_events_print_hostile_ids_and_errors_literally(settings: Settings, session_factory) -> None:
    from lifecycle.models import StripeEvent

    with session_factory() as s:
        s.add(StripeEvent(id="evt_[/]x", type="invoice.paid", created=1, payload={}, status="failed",
                          error=f"customer [link=https://evil.example]x[/link] {ESC}[2J gone", attempts=1))
        s.commit()
    result = run_plain(settings, "stripe", "events", "--failed")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "evt_[/]x" in result.stdout and ESC not in result.stdout
    assert "customer [link=https://evil.example]x[/link]  gone" in result.stdout


def test_an_unknown_customer_id_with_markup_is_reported_literally(settings: Settings) -> None:
    result = run_plain(settings, "customer", "show", "[/]nobody")
    assert result.returncode == 1 and "unknown customer '[/]nobody'" in result.stdout
