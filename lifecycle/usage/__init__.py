"""Usage metering: ingest, thresholds, check-and-record, entitlements, reconcile, export."""

from lifecycle.usage.service import (
    CheckResult,
    Crossing,
    CustomerInfo,
    Drift,
    EventIn,
    EventResult,
    IngestResult,
    Period,
    UsageError,
    UsageService,
    add_months,
    crossing_event_data,
    load_customers,
    number,
    parse_event,
    period_from_anchor,
    signal_event_id,
)

__all__ = [
    "CheckResult", "Crossing", "CustomerInfo", "Drift", "EventIn", "EventResult",
    "IngestResult", "Period", "UsageError", "UsageService", "add_months", "crossing_event_data",
    "load_customers", "number", "parse_event", "period_from_anchor", "signal_event_id",
]
