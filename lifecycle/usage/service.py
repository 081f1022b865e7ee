"""``UsageService``: metering on one database, the room's one door for the API, the CLI and
the bench. Each method hands its work to the module named for it (see the package's
docstring); this class only holds the session factory and the settings they need."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import IO, Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.models import UsageEvent
from lifecycle.settings import Settings
from lifecycle.usage import check, entitlements, export, ingest, reconcile, signals
from lifecycle.usage.periods import Period
from lifecycle.usage.results import CheckResult, Crossing, Drift, IngestResult


class UsageService:
    """Metering on one database. Cheap to build; holds no connection between calls."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        max_batch: int = 1000,
        clock_skew: dt.timedelta = dt.timedelta(minutes=5),
    ) -> None:
        self.session_factory = session_factory
        self.max_batch = max_batch
        self.skew = clock_skew
        bind = session_factory.kw.get("bind")
        self.dialect = bind.dialect.name if isinstance(bind, Engine) else "sqlite"
        self._check_upserts = check.build_upserts(self.dialect)

    @classmethod
    def from_settings(cls, session_factory: sessionmaker[Session], settings: Settings) -> UsageService:
        return cls(
            session_factory,
            max_batch=settings.usage_max_batch,
            clock_skew=dt.timedelta(seconds=settings.usage_clock_skew_seconds),
        )

    def ingest(self, raw_events: Sequence[Any], *, now: dt.datetime | None = None) -> IngestResult:
        """Store and count a batch. Each event is accepted, duplicate or rejected on its own."""
        return ingest.ingest_batch(self.session_factory, raw_events, dialect=self.dialect,
                                   max_batch=self.max_batch, skew=self.skew, now=now)

    def check(self, raw: Any, *, now: dt.datetime | None = None) -> CheckResult:
        """Answer allowed/refused for one metered request and record it when allowed."""
        return check.check_and_record(self.session_factory, raw, dialect=self.dialect,
                                      skew=self.skew, upserts=self._check_upserts, now=now)

    def entitlements(self, customer_id: str, *, now: dt.datetime | None = None) -> dict[str, Any]:
        """Plan, features, and each metric's limit, used and remaining in the current period."""
        return entitlements.for_customer(self.session_factory, customer_id, now=now)

    def pending_signals(
        self, *, now: dt.datetime | None = None, older_than: dt.timedelta = dt.timedelta(0),
        limit: int = 500,
    ) -> list[Crossing]:
        """Crossings not yet signalled whose retry time has come."""
        return signals.pending(self.session_factory, now=now, older_than=older_than, limit=limit)

    def mark_signalled(self, signal_ids: Sequence[int], *, now: dt.datetime | None = None) -> None:
        signals.mark_signalled(self.session_factory, signal_ids, now=now)

    def mark_failed(self, signal_id: int, error: str, *, now: dt.datetime | None = None) -> None:
        """Count a failed attempt and back off (5 s doubling, at most an hour)."""
        signals.mark_failed(self.session_factory, signal_id, error, now=now)

    def reconcile(self, *, fix: bool = False, customer_id: str | None = None) -> list[Drift]:
        """Recompute every counter from the raw events; report (and with ``fix`` repair) drift."""
        return reconcile.reconcile_counters(self.session_factory, dialect=self.dialect, fix=fix,
                                            customer_id=customer_id)

    def resolve_period(self, customer_id: str, spec: str) -> Period:
        """``YYYY-MM``: the billing period that starts in that month; ``YYYY-MM-DD``: the one
        containing that day; ``current``: today's."""
        return export.resolve_period(self.session_factory, customer_id, spec)

    def export_events(self, customer_id: str, period: Period) -> Iterator[UsageEvent]:
        return export.export_events(self.session_factory, customer_id, period)

    def export_csv(self, customer_id: str, period: Period, out: IO[str]) -> int:
        """Write the raw events of ``period`` as CSV; returns how many rows."""
        return export.export_csv(self.session_factory, customer_id, period, out)
