"""The dunning chaos bench at a small N: customers through dunning on the dev server while
the worker is SIGKILLed and restarted; nothing lost, nothing mailed or charged twice."""

from __future__ import annotations

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
