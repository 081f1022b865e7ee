"""`lifecycle stripe sync|events`: against localstripe and a SQLite database."""

from __future__ import annotations

from sqlalchemy import func, select
from typer.testing import CliRunner

from lifecycle.billing.webhooks import process_event, record_event
from lifecycle.db import session_scope
from lifecycle.models import PlanPrice
from starter.cli.app import app
from starter.dev.localstripe import LocalStripe
from tests.support.stripe import make_event


def run(env: dict[str, str], *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, ["stripe", *args], env=env)
    return r.exit_code, r.stdout


def test_sync_records_the_catalog_and_a_second_run_changes_nothing(
    sqlite_url: str, localstripe: LocalStripe, session_factory
):
    env = {
        "LIFECYCLE_DATABASE_URL": sqlite_url,
        "LIFECYCLE_STRIPE_API_KEY": "sk_test_cli",
        "LIFECYCLE_STRIPE_API_BASE": localstripe.url,
    }
    first, _ = run(env, "sync")
    code, out = run(env, "sync")

    assert (first, code) == (0, 0)
    assert "0 created, 0 updated, 0 retired, 12 unchanged" in out
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(PlanPrice).where(PlanPrice.active.is_(True))) == 8


def test_sync_without_a_key_names_the_setting(sqlite_url: str):
    code, out = run({"LIFECYCLE_DATABASE_URL": sqlite_url, "LIFECYCLE_STRIPE_API_KEY": ""}, "sync")
    assert code == 2 and "LIFECYCLE_STRIPE_API_KEY" in out


def test_events_lists_the_failed_ones_with_their_status(sqlite_url: str, session_factory):
    ok = make_event("balance.available", {"object": "balance"}, event_id="evt_ok")
    bad = make_event("customer.subscription.updated", {"object": "subscription", "id": "sub_x"}, event_id="evt_bad")
    for event in (ok, bad):
        with session_scope(session_factory) as s:
            record_event(s, event)
        process_event(session_factory, event["id"])
    env = {"LIFECYCLE_DATABASE_URL": sqlite_url}

    code_all, everything = run(env, "events")
    code_failed, failed = run(env, "events", "--failed")

    assert (code_all, code_failed) == (0, 0)
    assert "evt_ok" in everything and "ignored" in everything and "evt_bad" in everything
    assert "evt_bad" in failed and "failed" in failed and "evt_ok" not in failed
