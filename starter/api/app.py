"""The HTTP API (FastAPI). OpenAPI docs at /docs.

The database engine and the Temporal client are built once in the lifespan and kept
on ``app.state``; routes reach them through the dependencies in ``deps.py``. The lifespan
also runs the background rounds that make every acknowledged event count: the signal
outbox relay and the Stripe event sweeper (the usage-signal resend lives with the usage
routes). Each is safe with many API replicas running it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

from lifecycle.billing.prices import configure_price_tiers
from lifecycle.db import make_engine, make_session_factory
from lifecycle.settings import Settings, get_settings, refuse_unsafe_start
from lifecycle.temporal import connect
from starter.api import (
    access_log,
    actions,
    customers,
    dunning,
    email,
    errors,
    events,
    metrics,
    retention,
    stripe_webhooks,
    subscriptions,
    usage,
    webhook_endpoints,
)
from starter.api.auth import APIKeyMiddleware
from starter.api.deps import require_api_key, require_scope
from starter.api.errors import responses
from starter.api.fields import safe_params
from starter.api.limits import BodyLimitMiddleware
from starter.api.usage_docs import DOC_MODELS
from starter.pages import card as card_page
from starter.pages import reactivate
from starter.signals.relay import Relay, run_every


class Health(BaseModel):
    status: str  # ok | degraded
    database: str  # ok | error: <exception class>
    temporal: str


def create_app(
    settings: Settings | None = None, *, temporal: Client | None = None, host: str | None = None
) -> FastAPI:
    """The app; refuses (SettingsError) production-like settings with a default or short secret
    (lifecycle.settings.refuse_unsafe_start), ``host`` being the interface the server binds."""
    settings = settings or get_settings()
    refuse_unsafe_start(settings, host=host, who="the API")
    access_log.install()  # the signed links' tokens never reach a log line

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        configure_price_tiers(settings.stripe_price_tiers)  # used by the webhooks' mirror
        app.state.settings = settings
        app.state.engine = engine
        app.state.session_factory = make_session_factory(engine)
        # Lazy: the API starts (and answers 503 on writes) while Temporal is down.
        app.state.temporal = temporal or await connect(settings, lazy=True)
        factory = app.state.session_factory
        relay = app.state.relay = Relay(app.state.temporal, settings, factory)
        tasks = []
        if settings.signal_relay_interval_seconds > 0:
            tasks.append(asyncio.create_task(run_every(
                settings.signal_relay_interval_seconds,
                relay.round,
                "signal outbox relay",
            ), name="signal-outbox-relay"))
        if settings.stripe_sweep_interval_seconds > 0:
            tasks.append(asyncio.create_task(run_every(
                settings.stripe_sweep_interval_seconds,
                lambda: stripe_webhooks.sweep_round(relay),
                "stripe event sweep",
            ), name="stripe-event-sweep"))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            engine.dispose()

    app = FastAPI(
        title="Lifecycle Engine",
        version="0.1.0",
        description="Customer lifecycle campaigns on Temporal. Every /v1 route needs a bearer API key.",
        lifespan=lifespan,
    )
    # Outermost first on the way in: the key (401), then the body's size (413), then the app.
    app.add_middleware(BodyLimitMiddleware, settings=settings)
    app.add_middleware(APIKeyMiddleware, settings=settings)
    errors.install(app, extra_models=DOC_MODELS)
    # The middleware has already refused a request without a key; the dependency stays for
    # the OpenAPI document's security scheme (and as a second check).
    safe = Depends(safe_params)
    authed = [Depends(require_api_key), safe]

    # each router needs its scope of the key: 403 without it (lifecycle/api_keys.py)
    for router, scope in ((events.router, "events"), (customers.router, "read"), (usage.router, "usage"),
                          (subscriptions.router, "billing"), (dunning.router, "billing"),
                          (retention.router, "billing"),
                          (webhook_endpoints.router, "ops"), (actions.router, "ops"),
                          (dunning.ops_router, "ops")):
        app.include_router(router, dependencies=[*authed, Depends(require_scope(scope))], responses=responses(403))
    app.include_router(stripe_webhooks.router)  # authenticated by the Stripe-Signature header
    app.include_router(metrics.router)
    # no API key: the signed token authenticates unsubscribes, SendGrid's signature the webhook
    app.include_router(email.router, dependencies=[safe])
    app.include_router(card_page.router)  # the signed link authenticates; it checks its own input
    app.include_router(reactivate.router, dependencies=[safe])  # the signed link authenticates

    @app.get("/healthz", tags=["ops"], response_model=Health, responses={
        503: {"model": Health, "description": "the database or Temporal is unreachable"}})
    async def healthz() -> JSONResponse:
        def ping_database() -> None:
            with app.state.engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        deadline = settings.temporal_deadline_seconds

        async def check(probe: Any) -> str:
            try:
                await asyncio.wait_for(probe, timeout=deadline)
                return "ok"
            except Exception as exc:  # report, don't crash the probe
                return f"error: {exc.__class__.__name__}"

        # both at once, each within the deadline: the probe answers within one deadline
        database, temporal_ = await asyncio.gather(
            check(run_in_threadpool(ping_database)),
            check(app.state.temporal.service_client.check_health(timeout=timedelta(seconds=deadline))),
        )
        checks = {"database": database, "temporal": temporal_}
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "degraded", **checks}, status_code=200 if ok else 503)

    return app
