"""Ingest a batch: every event stored raw in ``usage_events`` (the audit trail) and counted
into ``usage_counters`` (customer, metric, billing period) in one transaction, exactly once.

The unique constraint ``(customer_id, idempotency_key)`` decides what is new, not this code.
Each event is accepted, duplicate or rejected on its own; a bad event never sinks the rest.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from lifecycle.usage.bulk_sql import Deltas, add_to_counters, insert_events
from lifecycle.usage.parsing import check_against_customer, parse_event
from lifecycle.usage.periods import load_customers
from lifecycle.usage.results import Crossing, EventIn, EventResult, IngestResult, UsageError
from lifecycle.usage.thresholds import detect
from lifecycle.usage.transactions import end_read_phase, with_retry


def ingest_batch(
    sessions: sessionmaker[Session],
    raw_events: Sequence[Any],
    *,
    dialect: str,
    max_batch: int,
    skew: dt.timedelta,
    now: dt.datetime | None = None,
) -> IngestResult:
    """Store and count a batch. Each event is accepted, duplicate or rejected on its own."""
    if len(raw_events) > max_batch:
        raise UsageError(
            "events", f"{len(raw_events)} events in one batch; at most {max_batch}",
            status=413,
        )
    now = now or dt.datetime.now(dt.UTC)
    results: list[EventResult | None] = [None] * len(raw_events)
    statuses: dict[int, int] = {}
    valid: list[EventIn] = []
    seen: set[tuple[str, str]] = set()
    for i, raw in enumerate(raw_events):
        try:
            ev = parse_event(raw, i, now, skew=skew)
        except UsageError as err:
            key = raw.get("idempotency_key") if isinstance(raw, dict) else None
            results[i] = EventResult(i, key if isinstance(key, str) else None, "rejected",
                                     err.field, err.reason)
            statuses[i] = err.status
            continue
        ident = (ev.customer_id, ev.idempotency_key)
        if ident in seen:
            results[i] = EventResult(i, ev.idempotency_key, "duplicate",
                                     reason="repeated in this batch")
            continue
        seen.add(ident)
        valid.append(ev)
    crossings: list[Crossing] = []
    if valid:
        inserted, crossings, rejected = with_retry(
            lambda: store(sessions, valid, now, dialect=dialect, skew=skew))
        for ev in valid:
            if ev.index in rejected:
                refusal = rejected[ev.index]
                results[ev.index] = EventResult(ev.index, ev.idempotency_key, "rejected",
                                                refusal.field, refusal.reason)
                statuses[ev.index] = refusal.status
            elif (ev.customer_id, ev.idempotency_key) in inserted:
                results[ev.index] = EventResult(ev.index, ev.idempotency_key, "accepted")
            else:
                results[ev.index] = EventResult(ev.index, ev.idempotency_key, "duplicate",
                                                reason="already recorded")
    return IngestResult([r for r in results if r is not None], crossings, statuses)


def store(
    sessions: sessionmaker[Session], events: list[EventIn], now: dt.datetime, *,
    dialect: str, skew: dt.timedelta,
) -> tuple[set[tuple[str, str]], list[Crossing], dict[int, UsageError]]:
    """One transaction: the events that fit their customer stored and counted, thresholds
    marked. Returns the keys that were new, the crossings, and the events refused."""
    with sessions() as session:
        # Read phase, committed before the first write: on SQLite a read transaction
        # that later writes can fail at once with SQLITE_BUSY under concurrency.
        infos = load_customers(session, {e.customer_id for e in events})
        end_read_phase(session, dialect)
        rejected: dict[int, UsageError] = {}
        rows: list[dict[str, Any]] = []
        deltas: Deltas = {}
        for ev in events:
            info = infos.get(ev.customer_id)
            try:
                check_against_customer(ev, info, skew)
            except UsageError as err:
                rejected[ev.index] = err
                continue
            assert info is not None
            period = info.period_at(max(ev.occurred_at, info.created_at))
            rows.append({
                "customer_id": ev.customer_id,
                "metric": ev.metric,
                "quantity": ev.quantity,
                "occurred_at": ev.occurred_at,
                "period_start": period.start,
                "idempotency_key": ev.idempotency_key,
                "received_at": now,
                "_period_end": period.end,
            })
        if not rows:
            return set(), [], rejected
        # A stable order keeps concurrent batches taking row locks in the same order.
        rows.sort(key=lambda r: (r["customer_id"], r["idempotency_key"]))
        inserted = insert_events(session, rows, dialect)
        for r in rows:
            if (r["customer_id"], r["idempotency_key"]) in inserted:
                k = (r["customer_id"], r["metric"], r["period_start"])
                slot = deltas.get(k)
                if slot is None:
                    deltas[k] = [r["quantity"], r["_period_end"]]
                else:
                    slot[0] += r["quantity"]
        crossings: list[Crossing] = []
        if deltas:
            counters = add_to_counters(session, deltas, now, dialect)
            crossings = detect(session, counters, infos, now)
        session.commit()
        return inserted, crossings, rejected
