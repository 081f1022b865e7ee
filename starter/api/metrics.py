"""GET /metrics: Prometheus text format (webhook events, failures, signature failures, ...).

Unauthenticated like /healthz; expose it only where the scraper can reach it. The webhook
gauges (endpoints enabled / disabled, deliveries by status) are read from the database at
each scrape, so every API replica reports the same, true numbers.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from lifecycle.webhooks.deliveries import counts

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
            endpoints, deliveries = counts(session)
    except SQLAlchemyError as exc:  # the scrape still answers; the gauges keep their last values
        log.warning("webhook gauges not refreshed: %s", exc)
        return
    for state, n in endpoints.items():
        WEBHOOK_ENDPOINTS.labels(state=state).set(n)
    for status, n in deliveries.items():
        WEBHOOK_DELIVERIES.labels(status=status).set(n)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """A sync route: FastAPI runs it in a worker thread, so the database read is off the loop."""
    _refresh_webhook_gauges(request)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
