"""Run localstripe (a stateful fake Stripe from PyPI) for ``lifecycle dev`` and the tests.

localstripe 1.15.10 pickles its whole state after every write to the hard-coded path
``/tmp/localstripe.pickle`` (not ``tempfile.gettempdir()``, so TMPDIR does not move it):
two processes on one machine overwrite each other's file, and a start without
``--from-scratch`` loads whatever the last one wrote. So it is started here through a
small launcher (``python -m starter.dev.localstripe``) that points its store at a file of
our choosing, or keeps it in memory only (tests: no file, no pickling on every write).

    handle = start_localstripe()                 # free port, in-memory state
    handle.register_webhook("http://127.0.0.1:8000/webhooks/stripe", "whsec_...")
    ...
    handle.stop()
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

import httpx

log = logging.getLogger("starter.dev.localstripe")

DEFAULT_KEY = "sk_test_localstripe"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalStripe:
    """A running localstripe process."""

    port: int
    process: subprocess.Popen[bytes]
    state_file: Path | None = None
    _log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def register_webhook(
        self, url: str, secret: str, webhook_id: str = "lifecycle", events: list[str] | None = None
    ) -> None:
        """Make localstripe POST its signed events to ``url`` (it sends each event once)."""
        data: list[tuple[str, str]] = [("url", url), ("secret", secret)]
        for e in events or []:
            data.append(("events[]", e))
        r = httpx.post(
            f"{self.url}/_config/webhooks/{webhook_id}",
            content=urlencode(data),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=10,
        )
        r.raise_for_status()

    def reset(self) -> None:
        """Forget every object (``DELETE /_config/data``)."""
        httpx.delete(f"{self.url}/_config/data", timeout=10).raise_for_status()

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LocalStripe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_ready(url: str, process: subprocess.Popen[bytes] | None = None, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"localstripe exited with code {process.returncode} before it was ready")
        try:
            r = httpx.get(
                f"{url}/v1/balance", headers={"Authorization": f"Bearer {DEFAULT_KEY}"}, timeout=1
            )
            if r.status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"localstripe at {url} not ready after {timeout:.0f}s ({last})")


def start_localstripe(
    port: int | None = None,
    *,
    state_file: Path | None = None,
    log_path: Path | None = None,
    ready_timeout: float = 20.0,
) -> LocalStripe:
    """Start localstripe on ``port`` (a free one if None) and wait until it answers.

    ``state_file``: where its objects persist across restarts (None: in memory only).
    """
    port = port or free_port()
    cmd = [sys.executable, "-m", "starter.dev.localstripe", "--port", str(port)]
    if state_file is not None:
        state_file.parent.mkdir(parents=True, exist_ok=True)
        cmd += ["--state-file", str(state_file)]
    out: IO[bytes] | None = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(log_path, "ab")  # noqa: SIM115 - closed by LocalStripe.stop
    proc = subprocess.Popen(
        cmd, stdout=out or subprocess.DEVNULL, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    handle = LocalStripe(port=port, process=proc, state_file=state_file, _log=out)
    try:
        wait_ready(handle.url, proc, ready_timeout)
    except BaseException:
        handle.stop()
        raise
    log.info("localstripe ready at %s (state: %s)", handle.url, state_file or "memory")
    return handle


async def start_for_dev(
    settings: Any,
    *,
    webhook_url: str,
    state_file: Path | None = None,
    log_path: Path | None = None,
) -> LocalStripe:
    """For ``lifecycle dev``: start localstripe on ``settings.localstripe_port``, register
    the API's webhook URL with ``settings.stripe_webhook_secret``, and sync the catalog.

    ``settings.stripe_api_base`` must point at the same port (the caller sets it), and the
    database must be migrated. Returns the handle; call ``handle.stop()`` on shutdown.
    """
    from lifecycle.billing.catalog_sync import sync_catalog
    from lifecycle.billing.client import make_stripe_client
    from lifecycle.db import make_engine, make_session_factory

    secret = settings.stripe_webhook_secret.get_secret_value()
    if not secret:
        raise RuntimeError("LIFECYCLE_STRIPE_WEBHOOK_SECRET must be set for localstripe's webhooks")
    handle = await asyncio.to_thread(
        start_localstripe, settings.localstripe_port, state_file=state_file, log_path=log_path
    )
    try:
        await asyncio.to_thread(handle.register_webhook, webhook_url, secret)
        engine = make_engine(settings.database_url)
        try:
            client = make_stripe_client(settings, max_network_retries=2)
            report = await asyncio.to_thread(sync_catalog, client, make_session_factory(engine))
        finally:
            engine.dispose()
        log.info(
            "localstripe catalog: %d created, %d unchanged", len(report.created), len(report.unchanged)
        )
    except BaseException:
        handle.stop()
        raise
    return handle


# --- the launcher (runs in the child process) -------------------------------------------------


def _patch_store(state_file: Path | None) -> None:
    import pickle

    from localstripe import resources

    def load(self: Any) -> None:
        if state_file is None or not state_file.exists():
            return
        with open(state_file, "rb") as f:
            old = pickle.load(f)
        self.clear()
        self.update(old)

    def dump(self: Any) -> None:
        if state_file is None:
            return
        tmp = state_file.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(state_file)

    resources.Store.try_load_from_disk = load  # type: ignore[method-assign]  # patching localstripe's store
    resources.Store.dump_to_disk = dump  # type: ignore[method-assign]  # patching localstripe's store


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m starter.dev.localstripe")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-file", type=Path, default=None)
    args = parser.parse_args(argv)
    _patch_store(args.state_file)

    from localstripe import server

    if args.state_file is not None:
        server.store.try_load_from_disk()
    sys.argv = ["localstripe", "--port", str(args.port), "--from-scratch"]
    server.start()


if __name__ == "__main__":
    main()
