"""The ingest hot path's hand-written SQL, one form per dialect: store a batch's raw events
and add it to its counters, each in one statement (per page on SQLite).

Written out by hand rather than built with SQLAlchemy because that is where the time goes
(``bench/usage_ingest.py`` measures it): on PostgreSQL the whole batch travels as one JSON
parameter that the server unpacks (psycopg's per-element array adaptation cost more than
the insert itself); on SQLite a multi-row ``VALUES`` list in pages that stay under the
bound-parameter limit, with times written as SQLAlchemy stores them (naive-UTC text) so the
ORM reads them back unchanged. Both skip what is already there with ``ON CONFLICT`` and say
what they did with ``RETURNING``.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from typing import Any, NamedTuple

import orjson
from sqlalchemy import text
from sqlalchemy.orm import Session

from lifecycle.models import UsageCounter
from lifecycle.usage.results import stored_quantity

# (customer_id, metric, period_start) -> [quantity to add, period_end]
Deltas = dict[tuple[str, str, dt.datetime], list[Any]]


class CounterRow(NamedTuple):
    """A ``usage_counters`` row as it is after an update."""

    customer_id: str
    metric: str
    period_start: dt.datetime
    period_end: dt.datetime
    used: Decimal
    crossed_80_at: dt.datetime | None
    crossed_100_at: dt.datetime | None


def insert_events(session: Session, rows: list[dict[str, Any]], dialect: str) -> set[tuple[str, str]]:
    """Insert raw events, skipping keys already stored; returns the keys that were new."""
    if dialect == "postgresql":
        doc = orjson.dumps([
            [r["customer_id"], r["metric"], str(r["quantity"]), r["occurred_at"],
             r["period_start"], r["idempotency_key"], r["received_at"]]
            for r in rows
        ]).decode()
        stmt = text(
            "INSERT INTO usage_events (customer_id, metric, quantity, occurred_at, "
            "period_start, idempotency_key, received_at) "
            "SELECT e->>0, e->>1, (e->>2)::numeric, (e->>3)::timestamptz, "
            "(e->>4)::timestamptz, e->>5, (e->>6)::timestamptz "
            "FROM jsonb_array_elements(CAST(:doc AS jsonb)) AS e "
            "ON CONFLICT (customer_id, idempotency_key) DO NOTHING "
            "RETURNING customer_id, idempotency_key"
        )
        return {(r.customer_id, r.idempotency_key) for r in session.execute(stmt, {"doc": doc})}
    out: set[tuple[str, str]] = set()
    page = max(1, sqlite_max_params(session) // 7)
    fmt = sqlite_time
    for start in range(0, len(rows), page):
        chunk = rows[start:start + page]
        values = ",".join(["(?,?,?,?,?,?,?)"] * len(chunk))
        params: list[Any] = []
        for r in chunk:
            params += (r["customer_id"], r["metric"], str(r["quantity"]), fmt(r["occurred_at"]),
                       fmt(r["period_start"]), r["idempotency_key"], fmt(r["received_at"]))
        sql = ("INSERT INTO usage_events (customer_id, metric, quantity, occurred_at, "
               "period_start, idempotency_key, received_at) VALUES " + values +
               " ON CONFLICT (customer_id, idempotency_key) DO NOTHING "
               "RETURNING customer_id, idempotency_key")
        out.update((r.customer_id, r.idempotency_key)
                   for r in session.connection().exec_driver_sql(sql, tuple(params)))
    return out


def add_to_counters(
    session: Session, deltas: Deltas, now: dt.datetime, dialect: str
) -> list[CounterRow]:
    """Upsert every counter the batch touches; returns each as it is after the update.

    Rows go in key order, so concurrent batches lock counters in the same order.
    """
    items = sorted(deltas.items(), key=lambda kv: kv[0])
    t = UsageCounter.__table__
    if dialect == "postgresql":
        doc = orjson.dumps([[c, m, p, pe, str(q)] for (c, m, p), (q, pe) in items]).decode()
        stmt = text(
            "INSERT INTO usage_counters (customer_id, metric, period_start, period_end, used, "
            "updated_at) SELECT e->>0, e->>1, (e->>2)::timestamptz, (e->>3)::timestamptz, "
            "(e->>4)::numeric, CAST(:now AS timestamptz) "
            "FROM jsonb_array_elements(CAST(:doc AS jsonb)) AS e "
            "ON CONFLICT (customer_id, metric, period_start) DO UPDATE SET "
            "used = usage_counters.used + excluded.used, updated_at = excluded.updated_at "
            "RETURNING customer_id, metric, period_start, period_end, used, crossed_80_at, "
            "crossed_100_at"
        ).columns(t.c.customer_id, t.c.metric, t.c.period_start, t.c.period_end, t.c.used,
                  t.c.crossed_80_at, t.c.crossed_100_at)
        return [CounterRow(**r._mapping) for r in session.execute(stmt, {"doc": doc, "now": now})]
    fmt = sqlite_time
    # SQLite answers times as the stored text: map each back to the batch's own datetimes.
    keys = {(c, m, fmt(p)): (p, pe) for (c, m, p), (_qty, pe) in items}
    out: list[CounterRow] = []
    page = max(1, sqlite_max_params(session) // 6)
    for start in range(0, len(items), page):
        chunk = items[start:start + page]
        params: list[Any] = []
        for (c, m, p), (q, pe) in chunk:
            params += (c, m, fmt(p), fmt(pe), str(q), fmt(now))
        sql = ("INSERT INTO usage_counters (customer_id, metric, period_start, period_end, used, "
               "updated_at) VALUES " + ",".join(["(?,?,?,?,?,?)"] * len(chunk)) +
               " ON CONFLICT (customer_id, metric, period_start) DO UPDATE SET "
               "used = used + excluded.used, updated_at = excluded.updated_at "
               "RETURNING customer_id, metric, period_start, used, crossed_80_at, crossed_100_at")
        for r in session.connection().exec_driver_sql(sql, tuple(params)):
            p_dt, pe_dt = keys[(r.customer_id, r.metric, r.period_start)]
            out.append(CounterRow(r.customer_id, r.metric, p_dt, pe_dt, stored_quantity(r.used),
                                  r.crossed_80_at, r.crossed_100_at))
    return out


def sqlite_max_params(session: Session) -> int:
    """SQLite's bound-parameter limit on this connection (999 when it cannot be asked)."""
    try:
        raw = session.connection().connection.dbapi_connection
        return int(raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))  # type: ignore[union-attr]  # getlimit: Python 3.11+ sqlite3, untyped here
    except (AttributeError, sqlite3.Error):
        return 999


def sqlite_time(value: dt.datetime) -> str:
    """How SQLAlchemy's SQLite DateTime stores a (naive UTC) datetime."""
    v = value.astimezone(dt.UTC)
    return (f"{v.year:04d}-{v.month:02d}-{v.day:02d} {v.hour:02d}:{v.minute:02d}:"
            f"{v.second:02d}.{v.microsecond:06d}")
