"""GET /metrics: Prometheus text format (webhook events, failures, signature failures, ...,
and the dunning counters).

Unauthenticated like /healthz; expose it only where the scraper can reach it.

The dunning counters (``lifecycle_dunning_{entered,recovered,suspended,ended}_total``) are
read from the database at each scrape: the dunning workflows write their runs there from
the worker, so every API replica answers the same totals, and they only grow.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.billing.dunning import counts

router = APIRouter(tags=["ops"])

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
            found = counts(session)
        for name, help_text in DUNNING_HELP.items():
            family = CounterMetricFamily(f"lifecycle_dunning_{name}", help_text)
            family.add_metric([], found[name])
            yield family


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """A sync route: FastAPI runs it in a worker thread (it reads the database)."""
    dunning = CollectorRegistry(auto_describe=False)
    dunning.register(DunningCollector(request.app.state.session_factory))  # type: ignore[arg-type]  # a collector by protocol
    return Response(generate_latest(REGISTRY) + generate_latest(dunning), media_type=CONTENT_TYPE_LATEST)
