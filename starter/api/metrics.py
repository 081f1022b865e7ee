"""GET /metrics: Prometheus text format (webhook events, failures, signature failures, ...,
and the dunning counters).

Unauthenticated like /healthz; expose it only where the scraper can reach it.

Read from the database at each scrape, so every API replica answers the same, true numbers:
the dunning counters (``lifecycle_dunning_{entered,recovered,suspended,ended}_total``; the
dunning workflows write their runs there from the worker, and they only grow),
``lifecycle_stripe_side_retries_total`` (invoices Stripe retried by itself in retry mode
engine, one per invoice: ``lifecycle.billing.charges``) and the
webhook gauges (endpoints enabled / disabled, deliveries by status).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.billing.charges import stripe_retries_count
from lifecycle.billing.dunning import counts as dunning_counts
from lifecycle.billing.dunning import end_actions_failing
from lifecycle.webhooks.deliveries import counts as webhook_counts

router = APIRouter(tags=["ops"])
log = logging.getLogger("lifecycle.api.metrics")

WEBHOOK_ENDPOINTS = Gauge(
    "lifecycle_webhook_endpoints", "Webhook endpoints of the product, by state (a disabled one "
    "failed a delivery for the whole retry window)", ["state"],
)
WEBHOOK_DELIVERIES = Gauge(
    "lifecycle_webhook_deliveries", "Webhook deliveries in the log, by status", ["status"]
)


def _refresh_webhook_gauges(request: Request) -> None:
    try:
        with request.app.state.session_factory() as session:
            endpoints, deliveries = webhook_counts(session)
    except SQLAlchemyError as exc:  # the scrape still answers; the gauges keep their last values
        log.warning("webhook gauges not refreshed: %s", exc)
        return
    for state, n in endpoints.items():
        WEBHOOK_ENDPOINTS.labels(state=state).set(n)
    for status, n in deliveries.items():
        WEBHOOK_DELIVERIES.labels(status=status).set(n)


DUNNING_HELP = {
    "entered": "customers that entered dunning (one per dunning run)",
    "recovered": "dunning runs that ended with every invoice paid",
    "suspended": "dunning runs that suspended the customer's access",
    "ended": "dunning runs that reached the end action (cancel, unpaid, leave_past_due)",
}


class DunningCollector:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def collect(self) -> Iterator[Metric]:
        with self._sessions() as session:
            found = dunning_counts(session)
            stripe_retries = stripe_retries_count(session)
            failing = len(end_actions_failing(session))
        for name, help_text in DUNNING_HELP.items():
            family = CounterMetricFamily(f"lifecycle_dunning_{name}", help_text)
            family.add_metric([], found[name])
            yield family
        family = CounterMetricFamily(
            "lifecycle_stripe_side_retries",
            "invoices Stripe retried by itself in retry mode engine (Smart Retries still on: turn them off)",
        )
        family.add_metric([], stripe_retries)
        yield family
        gauge = GaugeMetricFamily(
            "lifecycle_dunning_end_action_failing",
            "dunning runs whose end action (the cancel) Stripe has not confirmed: its call fails and is retried",
        )
        gauge.add_metric([], failing)
        yield gauge


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """A sync route: FastAPI runs it in a worker thread (it reads the database)."""
    _refresh_webhook_gauges(request)
    dunning = CollectorRegistry(auto_describe=False)
    dunning.register(DunningCollector(request.app.state.session_factory))  # type: ignore[arg-type]  # a collector by protocol
    return Response(generate_latest(REGISTRY) + generate_latest(dunning), media_type=CONTENT_TYPE_LATEST)
