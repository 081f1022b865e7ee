"""Usage metering: ingest, thresholds, check-and-record, entitlements, reconcile, export.

The database owns the facts. Every usage event is stored raw in ``usage_events`` (the
audit trail) and counted into ``usage_counters`` (customer, metric, billing period) in
the same transaction, exactly once (:mod:`.ingest`, :mod:`.check`). Crossing 80 % or 100 %
of the plan's limit marks the counter once and writes a row to the ``usage_signals``
outbox in that same transaction (:mod:`.thresholds`, :mod:`.signals`); the caller then
signals the customer's workflow and marks the row sent (:mod:`starter.signals.usage`).
Billing periods are in :mod:`.periods`.

Nothing here talks to Temporal or HTTP; the API, the CLI and the bench call
:class:`UsageService` (:mod:`.service`), which hands each call to the module named for it.
"""

from lifecycle.usage.parsing import parse_event
from lifecycle.usage.periods import (
    CustomerInfo,
    Period,
    add_months,
    load_customers,
    period_from_anchor,
)
from lifecycle.usage.results import (
    CheckResult,
    Crossing,
    Drift,
    EventIn,
    EventResult,
    IngestResult,
    UsageError,
    number,
)
from lifecycle.usage.service import UsageService
from lifecycle.usage.signals import signal_event_id

__all__ = [
    "CheckResult", "Crossing", "CustomerInfo", "Drift", "EventIn", "EventResult",
    "IngestResult", "Period", "UsageError", "UsageService", "add_months",
    "load_customers", "number", "parse_event", "period_from_anchor", "signal_event_id",
]
