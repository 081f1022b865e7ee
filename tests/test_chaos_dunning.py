"""The dunning chaos bench at a small N: customers through dunning on the dev server while
the worker is SIGKILLed and restarted; nothing lost, nothing mailed or charged twice."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "chaos_dunning.py"


def test_worker_kills_lose_no_step_and_send_or_charge_nothing_twice() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--customers", "4", "--kill-every", "2-4", "--day-seconds", "1",
         "--seed", "7", "--json"],
        capture_output=True, text=True, timeout=400,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["runs"] == 4 and figures["kills"] >= 3
    assert (figures["steps_lost"], figures["emails_sent_twice"], figures["retries_charged_twice"]) == (0, 0, 0)
    assert figures["recovered"] + figures["ended"] == 4


def test_the_recovery_check_accepts_a_late_card_and_still_catches_a_lost_retry(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH.parent))
    spec = importlib.util.spec_from_file_location("chaos_dunning", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ok = bench.recovery_recorded
    assert ok(["retry_1", "retry_2"], ["declined", "paid"])
    # the good card came after retry 2 had already run (retry 1 recorded late): paid on retry 3
    assert ok(["retry_1", "retry_2", "retry_3"], ["declined", "declined", "paid"])
    # a real lost step is still one: a retry of the schedule never recorded, or the paying one
    assert not ok(["retry_1", "retry_3"], ["declined", "paid"])
    assert not ok(["retry_2"], ["paid"])
    assert not ok(["retry_1", "retry_2"], ["declined", "declined"])
    assert not ok(["retry_1"], ["declined"])
    assert not ok(["retry_1", "retry_2", "retry_2"], ["declined", "paid", "paid"])
    assert not ok(["retry_1", "retry_2", "retry_3"], ["declined", "paid", "paid"])  # paid, then again
