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
from tests.helpers import add_customer

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
    assert "subscription: business monthly $99.00, active" in out
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
