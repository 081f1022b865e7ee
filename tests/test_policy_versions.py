"""Policy versions: publishing (the service and `lifecycle policy publish`), on SQLite and
PostgreSQL; what entities do with them is in tests/test_policy_entities.py."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from lifecycle.contracts.policy import load_policy
from lifecycle.contracts.tiers import tiers_from_catalog
from lifecycle.db import database, session_scope
from lifecycle.models import PolicyVersionRow
from lifecycle.policy import versions
from lifecycle.policy.versions import latest, publish
from lifecycle.settings import Settings

CLI = str(Path(sys.prefix) / "bin" / "lifecycle")
POLICY = Path(__file__).resolve().parents[1] / "templates" / "campaigns.toml"


def _count(url: str) -> int:
    with database(url) as factory, factory() as s:
        return int(s.scalar(select(func.count()).select_from(PolicyVersionRow)) or 0)


def test_the_same_content_published_twice_is_one_version_and_an_earlier_one_can_come_back(db_url: str) -> None:
    a = load_policy(POLICY)
    b = replace(a, trial=replace(a.trial, length_days=21))
    tiers = tiers_from_catalog()
    with database(db_url) as factory:
        with session_scope(factory) as s:
            first = publish(s, a, tiers, who="ada")
        with session_scope(factory) as s:
            again = publish(s, a, tiers, who="bob")
        assert (first.created, first.changed) == (True, True)
        assert (again.version.version_id, again.created, again.changed) == (first.version.version_id, False, False)
        assert _count(db_url) == 1

        with session_scope(factory) as s:
            second = publish(s, b, tiers, who="ada")
        assert second.created and second.version.version_id != first.version.version_id
        with session_scope(factory) as s:  # a worker deployed with the old files takes nothing back
            stale = publish(s, a, tiers, who="worker", reinstate=False)
            assert not stale.changed and latest(s).version_id == second.version.version_id  # type: ignore[union-attr]
        with session_scope(factory) as s:  # an operator publishing the old content: it is the latest again
            back = publish(s, a, tiers, who="carol")
            now = latest(s)
        assert (back.version.version_id, back.created, back.changed) == (first.version.version_id, False, True)
        assert now is not None and now.version_id == first.version.version_id
        assert now.policy == a and now.tiers == tiers  # what an entity loads is what was published
        assert _count(db_url) == 2


class _SkewedClock:
    """``dt`` for lifecycle/policy/versions.py whose ``datetime.now`` answers ``at`` (a host's clock)."""

    UTC = dt.UTC

    def __init__(self, at: dt.datetime) -> None:
        clock = self

        class _Datetime(dt.datetime):
            @classmethod
            def now(cls, tz: dt.tzinfo | None = None) -> _Datetime:  # type: ignore[override]
                return cls.fromtimestamp(clock.at.timestamp(), tz)

        self.at, self.datetime = at, _Datetime


def test_the_last_publish_wins_whatever_the_publishers_clocks_say(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review finding 9: the latest was ordered by the publisher's wall clock; a host whose
    clock is behind published a version that never became the latest."""
    a = load_policy(POLICY)
    b = replace(a, trial=replace(a.trial, length_days=21))
    tiers = tiers_from_catalog()
    clock = _SkewedClock(dt.datetime(2026, 12, 7, 18, 0, tzinfo=dt.UTC))
    monkeypatch.setattr(versions, "dt", clock)
    with database(db_url) as factory:
        with session_scope(factory) as s:
            first = publish(s, a, tiers, who="cli")
        clock.at -= dt.timedelta(hours=1)  # the next publisher's clock is an hour behind
        with session_scope(factory) as s:
            second = publish(s, b, tiers, who="worker")
        with session_scope(factory) as s:
            assert latest(s).version_id == second.version.version_id  # type: ignore[union-attr]
        clock.at -= dt.timedelta(days=1)  # an earlier content made the latest again, from a clock further behind
        with session_scope(factory) as s:
            back = publish(s, a, tiers, who="ops")
        with session_scope(factory) as s:
            assert (back.changed, latest(s).version_id) == (True, first.version.version_id)  # type: ignore[union-attr]


def _cli(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "LIFECYCLE_DATABASE_URL": settings.database_url, "COLUMNS": "200", **env}
    return subprocess.run([CLI, "policy", *args], env=full, capture_output=True, text=True, timeout=60)


def test_cli_publish_validates_the_file_and_stores_one_version(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "campaigns.toml"
    bad.write_text(POLICY.read_text().replace("length_days = 14", "length_days = -1", 1))
    refused = _cli(settings, "publish", "--no-signal", LIFECYCLE_POLICY_FILE=str(bad))
    assert refused.returncode == 1 and "not published" in refused.stdout and "trial.length_days" in refused.stdout
    assert _count(settings.database_url) == 0

    first = _cli(settings, "publish", "--no-signal", "--who", "ada")
    assert first.returncode == 0, first.stderr + first.stdout
    assert "policy version 1 (new)" in first.stdout and "4 tiers, a policy day of 86400 s" in first.stdout
    second = _cli(settings, "publish", "--who", "bob")  # nothing changed: no entity to tell, Temporal not asked
    assert second.returncode == 0, second.stderr + second.stdout
    assert "policy version 1 (unchanged" in second.stdout
    assert _count(settings.database_url) == 1
    listed = _cli(settings, "list")
    assert listed.returncode == 0 and "ada" in listed.stdout


@pytest.mark.parametrize("command", [["policy"], ["policy", "publish"], ["policy", "list"]])
def test_policy_commands_have_help(settings: Settings, command: list[str]) -> None:
    result = _cli(settings, *command[1:], "--help")
    assert result.returncode == 0 and "Usage" in result.stdout


async def test_the_worker_publishes_new_files_at_start_and_every_running_entity_hears_it(
    dev_env, settings: Settings, session_factory
) -> None:
    """A deploy without the CLI: the worker's start publishes the files never published and
    signals every running CustomerWorkflow it lists (the dev server: visibility works)."""
    from starter.signals.policy import running_entities
    from tests.support.helpers import eventually
    from tests.support.stripe import new_customer_id, signed_up
    from worker import build_worker, publish_at_start
    from workflows.customer import CustomerWorkflow

    client = dev_env.client
    async with build_worker(client, settings, session_factory):
        cids = [new_customer_id("ann") for _ in range(3)]
        for cid in cids:
            await signed_up(client, settings, session_factory, cid)

        async def listed() -> bool:
            return len([wid async for wid in running_entities(client)]) == 3

        await eventually(listed, timeout=30)
        await publish_at_start(client, settings, session_factory)
        with session_factory() as s:
            version = latest(s)
        assert version is not None and version.content_hash

        async def adopted() -> bool:
            states = [await client.get_workflow_handle(f"customer-{c}").query(CustomerWorkflow.state) for c in cids]
            return all(st.policy_version == version.version_id for st in states)

        await eventually(adopted, timeout=30)
        await publish_at_start(client, settings, session_factory)  # a second start: nothing new
        assert _count(settings.database_url) == 1


def test_cli_publish_with_temporal_down_stores_the_version_and_says_nobody_was_told(settings: Settings) -> None:
    from starter.dev.localstripe import free_port

    down = _cli(settings, "publish", LIFECYCLE_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}")
    assert down.returncode == 1, down.stdout + down.stderr
    assert "policy version 1 (new)" in down.stdout and "no customer workflow was signalled" in down.stdout
    assert "Traceback" not in down.stderr
    assert _count(settings.database_url) == 1
