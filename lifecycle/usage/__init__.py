"""Usage metering: ingest, thresholds, check-and-record, entitlements, reconcile, export."""
