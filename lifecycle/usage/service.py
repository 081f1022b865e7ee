"""Usage metering: ingestion, check-and-record, entitlements, thresholds, reconcile, export.

The database owns the facts. Every usage event is stored raw in ``usage_events`` (the
audit trail) and counted into ``usage_counters`` (customer, metric, billing period) in
the same transaction, exactly once: the unique constraint ``(customer_id,
idempotency_key)`` decides what is new, not this code. Crossing 80 % or 100 % of the
plan's limit marks the counter (a conditional ``UPDATE ... WHERE crossed_X_at IS NULL``,
so it happens once even when requests race across the line) and writes a row to the
``usage_signals`` outbox in that same transaction; the caller then signals the
customer's workflow and marks the row sent (:mod:`starter.signals.usage`).

Billing periods: the customer's live subscription's ``current_period_start/end`` when
there is one (earlier or later events fall into the periods stepped from it by the
subscription's interval), else calendar-month steps anchored on ``customers.created_at``.

Nothing here talks to Temporal or HTTP; the API, the CLI and the bench call it.
"""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import functools
import math
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import IO, Any

import orjson
from sqlalchemy import Engine, and_, bindparam, delete, func, select, text, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.contracts import catalog
from lifecycle.contracts.stages import ENDED_STATUSES
from lifecycle.db import dialect_insert
from lifecycle.models import Customer, Subscription, UsageCounter, UsageEvent, UsageSignal
from lifecycle.settings import Settings
from lifecycle.text import unsafe_reason

MAX_KEY_LENGTH = 200
MAX_CUSTOMER_ID_LENGTH = 128
MAX_QUANTITY = Decimal("1e12")
MAX_QUANTITY_INT = 10**12
QUANTUM = Decimal("0.000001")
_ZERO = Decimal(0)


# --- errors and results -----------------------------------------------------------------


class UsageError(Exception):
    """Bad input the caller can fix: ``field`` names what, ``reason`` says why.

    ``status`` is the HTTP status the API answers with (400 malformed, 404 unknown
    customer, 413 too large, 422 invalid value).
    """

    def __init__(self, field: str, reason: str, status: int = 422) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.status = status

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Period:
    start: dt.datetime
    end: dt.datetime

    def contains(self, at: dt.datetime) -> bool:
        return self.start <= at < self.end


@dataclass(slots=True)
class EventIn:
    """One validated event (not yet checked against the customer)."""

    index: int
    customer_id: str
    metric: str
    quantity: Decimal | int
    occurred_at: dt.datetime
    idempotency_key: str


@dataclass(slots=True)
class EventResult:
    index: int
    idempotency_key: str | None
    status: str  # accepted | duplicate | rejected
    field: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "idempotency_key": self.idempotency_key,
                               "status": self.status}
        if self.status == "rejected":
            out["field"] = self.field
            out["reason"] = self.reason
        elif self.reason:
            out["reason"] = self.reason
        return out


@dataclass(slots=True)
class Crossing:
    """A threshold crossed and written to the outbox (``signal_id``)."""

    signal_id: int
    event_id: str
    customer_id: str
    metric: str
    threshold: int
    used: Decimal
    limit: Decimal
    limit_kind: str
    period_start: dt.datetime
    period_end: dt.datetime
    plan_code: str


@dataclass
class IngestResult:
    results: list[EventResult]
    crossings: list[Crossing] = field(default_factory=list)
    http_status: dict[int, int] = field(default_factory=dict)  # index -> 4xx of a rejected event

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.count("accepted"),
            "duplicates": self.count("duplicate"),
            "rejected": self.count("rejected"),
            "results": [r.as_dict() for r in self.results],
        }


@dataclass
class CheckResult:
    allowed: bool
    customer_id: str
    metric: str
    quantity: Decimal
    idempotency_key: str
    used: Decimal
    limit: Decimal | None
    limit_kind: str | None
    period: Period
    duplicate: bool = False
    crossings: list[Crossing] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal | None:
        if self.limit is None:
            return None
        return max(self.limit - self.used, _ZERO)

    @property
    def overage(self) -> Decimal:
        if self.limit is None:
            return _ZERO
        return max(self.used - self.limit, _ZERO)

    def as_dict(self) -> dict[str, Any]:
        reason = None
        if not self.allowed:
            reason = (
                f"hard limit of {number(self.limit)} {self.metric} for this billing period "
                f"would be exceeded (used {number(self.used)}, asked {number(self.quantity)})"
            )
        return {
            "allowed": self.allowed,
            "reason": reason,
            "duplicate": self.duplicate,
            "customer_id": self.customer_id,
            "metric": self.metric,
            "quantity": number(self.quantity),
            "idempotency_key": self.idempotency_key,
            "used": number(self.used),
            "limit": number(self.limit),
            "limit_kind": self.limit_kind,
            "remaining": number(self.remaining),
            "overage": number(self.overage),
            "period_start": self.period.start.isoformat(),
            "period_end": self.period.end.isoformat(),
        }


@dataclass
class Drift:
    customer_id: str
    metric: str
    period_start: dt.datetime
    counted: Decimal  # what usage_counters says
    actual: Decimal  # the sum of the raw events
    fixed: bool = False

    @property
    def drift(self) -> Decimal:
        return self.counted - self.actual


def number(value: Decimal | int | None) -> int | float | None:
    """A Decimal as a JSON number: an int when whole."""
    if value is None or isinstance(value, int):
        return value
    if value == value.to_integral_value():
        return int(value)
    return float(value)


# --- billing periods --------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def add_months(anchor: dt.datetime, months: int) -> dt.datetime:
    """``anchor`` plus whole months, the day clamped to the month's end (Jan 31 + 1 = Feb 28)."""
    y, m = divmod(anchor.month - 1 + months, 12)
    year, month = anchor.year + y, m + 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)


def period_from_anchor(at: dt.datetime, anchor: dt.datetime, step_months: int = 1) -> Period:
    """The period of ``step_months`` months, stepped from ``anchor``, that contains ``at``."""
    diff = (at.year - anchor.year) * 12 + (at.month - anchor.month)
    k = diff // step_months
    start = add_months(anchor, k * step_months)
    while start > at:
        k -= 1
        start = add_months(anchor, k * step_months)
    end = add_months(anchor, (k + 1) * step_months)
    while end <= at:
        k += 1
        start, end = end, add_months(anchor, (k + 1) * step_months)
    return Period(start, end)


@dataclass(slots=True)
class CustomerInfo:
    """What metering needs to know about a customer, read once per request."""

    id: str
    plan_code: str
    stage: str
    created_at: dt.datetime
    sub_start: dt.datetime | None = None
    sub_end: dt.datetime | None = None
    sub_interval: str | None = None
    _last: Period | None = None

    @property
    def plan(self) -> catalog.Plan:
        return catalog.get_plan(self.plan_code)

    def period_at(self, at: dt.datetime) -> Period:
        last = self._last
        if last is not None and last.contains(at):
            return last
        if self.sub_start is not None and self.sub_end is not None and self.sub_end > self.sub_start:
            if self.sub_start <= at < self.sub_end:
                period = Period(self.sub_start, self.sub_end)
            else:
                step = 12 if self.sub_interval == "year" else 1
                period = period_from_anchor(at, self.sub_start, step)
        else:
            period = period_from_anchor(at, self.created_at, 1)
        self._last = period
        return period


def load_customers(session: Session, ids: Iterable[str]) -> dict[str, CustomerInfo]:
    """The customers among ``ids``, with their live subscription's period (one query)."""
    ids = list(set(ids))
    out: dict[str, CustomerInfo] = {}
    c = Customer.__table__.c
    s = Subscription.__table__.c
    conn = session.connection()
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start:chunk_start + 500]
        rows = conn.execute(
            select(c.id, c.plan_code, c.stage, c.created_at, s.current_period_start,
                   s.current_period_end, s.interval)
            .select_from(Customer.__table__.outerjoin(Subscription.__table__, and_(
                s.customer_id == c.id,
                s.status.not_in(ENDED_STATUSES),  # live: see lifecycle.contracts.stages.is_live
                s.current_period_start.is_not(None),
                s.current_period_end.is_not(None),
            )))
            .where(c.id.in_(chunk))
        )
        for cid, plan_code, stage, created_at, start, end, interval in rows:
            info = out.get(cid)
            if info is None:
                info = out[cid] = CustomerInfo(cid, plan_code, stage, created_at)
            if start is not None and (info.sub_start is None or start > info.sub_start):
                info.sub_start, info.sub_end, info.sub_interval = start, end, interval  # latest wins
    return out


# --- parsing one event ------------------------------------------------------------------

_ISO_NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$")


def parse_timestamp(value: Any, field_name: str = "timestamp") -> dt.datetime:
    if isinstance(value, bool):
        raise UsageError(field_name, "expected an ISO 8601 time with a zone, or epoch seconds")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise UsageError(field_name, "expected a finite number of epoch seconds")
        try:
            return dt.datetime.fromtimestamp(value, dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise UsageError(field_name, f"epoch seconds out of range: {value}") from None
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise UsageError(
                field_name, f"not an ISO 8601 time: {value[:40]!r} (e.g. 2026-11-25T08:00:00Z)"
            ) from None
        if parsed.tzinfo is None:
            raise UsageError(field_name, f"{value[:40]!r} has no time zone; add Z or +00:00")
        return parsed.astimezone(dt.UTC)
    raise UsageError(field_name, "expected an ISO 8601 time with a zone, or epoch seconds")


def parse_quantity(value: Any) -> Decimal | int:
    if type(value) is int and 0 <= value <= MAX_QUANTITY_INT:  # the common case, kept cheap
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError("quantity", f"expected a number, got {type(value).__name__} {str(value)[:40]!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError("quantity", "expected a finite number")
    if value < 0:
        raise UsageError("quantity", f"must not be negative, got {value}")
    try:
        qty = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    except InvalidOperation:  # pragma: no cover - repr of a finite float always parses
        raise UsageError("quantity", "not a number") from None
    if qty > MAX_QUANTITY:
        raise UsageError("quantity", f"too large (at most {MAX_QUANTITY:,.0f} per event)")
    if qty != qty.quantize(QUANTUM):
        raise UsageError("quantity", "at most 6 decimal places")
    return qty


def _text_field(raw: dict[str, Any], name: str, max_len: int) -> str:
    value = raw.get(name)
    if value is None:
        raise UsageError(name, "required")
    if not isinstance(value, str):
        raise UsageError(name, f"expected text, got {type(value).__name__}")
    if not value or not value.strip():
        raise UsageError(name, "must not be empty")
    if len(value) > max_len:
        raise UsageError(name, f"longer than {max_len} characters")
    reason = unsafe_reason(value)
    if reason is not None:  # PostgreSQL refuses NUL; a lone surrogate is not UTF-8
        raise UsageError(name, reason)
    return value


def parse_event(
    raw: Any, index: int, now: dt.datetime, *, skew: dt.timedelta, key_required: bool = True
) -> EventIn:
    """Validate one event's shape and values (the customer is checked later). Raises UsageError."""
    if not isinstance(raw, dict):
        raise UsageError("event", f"expected a JSON object, got {type(raw).__name__}")
    customer_id = _text_field(raw, "customer_id", MAX_CUSTOMER_ID_LENGTH)
    metric = _text_field(raw, "metric", 64)
    if metric not in catalog.METRICS:
        raise UsageError("metric", f"unknown metric {metric[:64]!r}; expected one of "
                                   f"{', '.join(catalog.METRICS)}")
    quantity = parse_quantity(raw["quantity"]) if "quantity" in raw else Decimal(1)
    ts = raw.get("timestamp")
    occurred_at = now if ts is None else parse_timestamp(ts)
    if occurred_at > now + skew:
        raise UsageError("timestamp", f"{occurred_at.isoformat()} is in the future "
                                      f"(more than {skew.total_seconds():.0f} s ahead of the server)")
    if key_required or raw.get("idempotency_key") is not None:
        key = _text_field(raw, "idempotency_key", MAX_KEY_LENGTH)
    else:
        key = f"auto:{uuid.uuid4().hex}"
    return EventIn(index, customer_id, metric, quantity, occurred_at, key)


def check_against_customer(ev: EventIn, info: CustomerInfo | None, skew: dt.timedelta) -> None:
    if info is None:
        raise UsageError("customer_id", f"unknown customer {ev.customer_id[:128]!r}", status=404)
    if ev.occurred_at < info.created_at - skew:
        raise UsageError(
            "timestamp",
            f"{ev.occurred_at.isoformat()} is before the customer existed "
            f"(created {info.created_at.isoformat()})",
        )


# --- the service ------------------------------------------------------------------------


def _is_retryable(exc: DBAPIError) -> bool:
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if code in ("40001", "40P01"):  # serialization failure, deadlock
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc)


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
        self._insert = dialect_insert(self.dialect)
        self._check_upsert = self._build_check_upserts()

    @classmethod
    def from_settings(cls, session_factory: sessionmaker[Session], settings: Settings) -> UsageService:
        return cls(
            session_factory,
            max_batch=settings.usage_max_batch,
            clock_skew=dt.timedelta(seconds=settings.usage_clock_skew_seconds),
        )

    # -- ingestion -----------------------------------------------------------------------

    def ingest(self, raw_events: Sequence[Any], *, now: dt.datetime | None = None) -> IngestResult:
        """Store and count a batch. Each event is accepted, duplicate or rejected on its own."""
        if len(raw_events) > self.max_batch:
            raise UsageError(
                "events", f"{len(raw_events)} events in one batch; at most {self.max_batch}",
                status=413,
            )
        now = now or dt.datetime.now(dt.UTC)
        results: list[EventResult | None] = [None] * len(raw_events)
        statuses: dict[int, int] = {}
        valid: list[EventIn] = []
        seen: set[tuple[str, str]] = set()
        for i, raw in enumerate(raw_events):
            try:
                ev = parse_event(raw, i, now, skew=self.skew)
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
            inserted, crossings, rejected = self._with_retry(lambda: self._store(valid, now))
            for ev in valid:
                if ev.index in rejected:
                    err = rejected[ev.index]
                    results[ev.index] = EventResult(ev.index, ev.idempotency_key, "rejected",
                                                    err.field, err.reason)
                    statuses[ev.index] = err.status
                elif (ev.customer_id, ev.idempotency_key) in inserted:
                    results[ev.index] = EventResult(ev.index, ev.idempotency_key, "accepted")
                else:
                    results[ev.index] = EventResult(ev.index, ev.idempotency_key, "duplicate",
                                                    reason="already recorded")
        return IngestResult([r for r in results if r is not None], crossings, statuses)

    def _with_retry(self, fn: Any, attempts: int = 5) -> Any:
        for attempt in range(attempts):
            try:
                return fn()
            except DBAPIError as exc:
                if attempt == attempts - 1 or not _is_retryable(exc):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _store(
        self, events: list[EventIn], now: dt.datetime
    ) -> tuple[set[tuple[str, str]], list[Crossing], dict[int, UsageError]]:
        with self.session_factory() as session:
            # Read phase, committed before the first write: on SQLite a read transaction
            # that later writes can fail at once with SQLITE_BUSY under concurrency.
            infos = load_customers(session, {e.customer_id for e in events})
            self._end_read_phase(session)
            rejected: dict[int, UsageError] = {}
            rows: list[dict[str, Any]] = []
            deltas: dict[tuple[str, str, dt.datetime], list[Any]] = {}
            for ev in events:
                info = infos.get(ev.customer_id)
                try:
                    check_against_customer(ev, info, self.skew)
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
            inserted = self._insert_events(session, rows)
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
                counters = self._add_to_counters(session, deltas, now)
                crossings = self._detect(session, counters, infos, now)
            session.commit()
            return inserted, crossings, rejected

    def _insert_events(self, session: Session, rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
        """Insert raw events, skipping keys already stored; returns the keys that were new."""
        if self.dialect == "postgresql":
            # One statement and one parameter for the whole batch: the rows travel as a
            # JSON document that the server unpacks (psycopg's per-element array
            # adaptation cost more than the insert itself; see bench/usage_ingest.py).
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
            return {(c, k) for c, k in session.execute(stmt, {"doc": doc})}
        # SQLite: multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING, in pages that
        # stay under SQLite's bound-parameter limit. Times are stored as SQLAlchemy's
        # naive-UTC text so the ORM reads them back unchanged.
        out: set[tuple[str, str]] = set()
        page = max(1, self._sqlite_max_params(session) // 7)
        fmt = _sqlite_time
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
            out.update((c, k) for c, k in session.connection().exec_driver_sql(sql, tuple(params)))
        return out

    def _add_to_counters(
        self,
        session: Session,
        deltas: dict[tuple[str, str, dt.datetime], list[Any]],
        now: dt.datetime,
    ) -> list[tuple[Any, ...]]:
        """Upsert every counter the batch touches in one statement (per page on SQLite).

        Returns (customer, metric, period_start, period_end, used, crossed_80, crossed_100)
        as they are after the update. Rows go in key order, so concurrent batches lock
        counters in the same order.
        """
        items = sorted(deltas.items(), key=lambda kv: kv[0])
        t = UsageCounter.__table__
        if self.dialect == "postgresql":
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
            return [tuple(r) for r in session.execute(stmt, {"doc": doc, "now": now})]
        fmt = _sqlite_time
        keys = {(c, m, fmt(p)): (c, m, p, pe) for (c, m, p), (_q_, pe) in items}
        out: list[tuple[Any, ...]] = []
        page = max(1, self._sqlite_max_params(session) // 6)
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
            for c, m, p, used, c80, c100 in session.connection().exec_driver_sql(sql, tuple(params)):
                _, _, p_dt, pe_dt = keys[(c, m, p)]
                out.append((c, m, p_dt, pe_dt, _q(used), c80, c100))
        return out

    @staticmethod
    def _sqlite_max_params(session: Session) -> int:
        import sqlite3

        try:
            raw = session.connection().connection.dbapi_connection
            return int(raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))  # type: ignore[union-attr]
        except (AttributeError, sqlite3.Error):
            return 999

    def _detect(
        self,
        session: Session,
        counters: list[tuple[Any, ...]],
        infos: dict[str, CustomerInfo],
        now: dt.datetime,
        *,
        refused: bool = False,
    ) -> list[Crossing]:
        """Mark thresholds crossed (once, race-free) and write them to the signal outbox."""
        crossings: list[Crossing] = []
        for cid, metric, p_start, p_end, used, c80, c100 in counters:
            info = infos[cid]
            limit = info.plan.limit(metric)
            if limit is None or limit.amount <= 0:
                continue
            amount = Decimal(str(limit.amount))
            reached_100 = used >= amount or (refused and limit.kind == "hard")
            reached_80 = used >= amount * Decimal("0.8") or reached_100
            fired: list[int] = []
            for th, reached, crossed, col in (
                (80, reached_80, c80, UsageCounter.crossed_80_at),
                (100, reached_100, c100, UsageCounter.crossed_100_at),
            ):
                if not reached or crossed is not None:
                    continue
                res = session.execute(
                    update(UsageCounter)
                    .where(
                        UsageCounter.customer_id == cid,
                        UsageCounter.metric == metric,
                        UsageCounter.period_start == p_start,
                        col.is_(None),
                    )
                    .values({col: now})
                    .returning(UsageCounter.customer_id)
                )
                if res.first() is not None:
                    fired.append(th)
            # Jumping past both lines at once sends the 100 % notice only.
            if 100 in fired and 80 in fired:
                fired.remove(80)
            if p_end <= now:
                continue  # a late event for a closed period: recorded, nothing to nudge
            for th in fired:
                event_id = signal_event_id(cid, metric, p_start, th)
                sig = UsageSignal(
                    event_id=event_id, customer_id=cid, metric=metric, threshold=th,
                    period_start=p_start, period_end=p_end, used=used, limit_amount=amount,
                    limit_kind=limit.kind, plan_code=info.plan_code, crossed_at=now,
                    attempts=0,
                )
                session.add(sig)
                session.flush()
                crossings.append(Crossing(sig.id, event_id, cid, metric, th, used, amount,
                                          limit.kind, p_start, p_end, info.plan_code))
        return crossings

    # -- check-and-record ----------------------------------------------------------------

    def check(self, raw: Any, *, now: dt.datetime | None = None) -> CheckResult:
        """Answer allowed/refused for one metered request and record it when allowed."""
        now = now or dt.datetime.now(dt.UTC)
        ev = parse_event(raw, 0, now, skew=self.skew, key_required=False)
        return self._with_retry(lambda: self._check(ev, now))

    def _check(self, ev: EventIn, now: dt.datetime) -> CheckResult:
        with self.session_factory() as session:
            infos = load_customers(session, [ev.customer_id])
            self._end_read_phase(session)
            info = infos.get(ev.customer_id)
            check_against_customer(ev, info, self.skew)
            assert info is not None
            period = info.period_at(max(ev.occurred_at, info.created_at))
            limit = info.plan.limit(ev.metric)
            amount = Decimal(str(limit.amount)) if limit else None
            kind = limit.kind if limit else None

            def result(allowed: bool, used: Decimal, **kw: Any) -> CheckResult:
                return CheckResult(allowed, ev.customer_id, ev.metric, ev.quantity,
                                   ev.idempotency_key, used, amount, kind, period, **kw)

            row = {
                "customer_id": ev.customer_id, "metric": ev.metric, "quantity": ev.quantity,
                "occurred_at": ev.occurred_at, "period_start": period.start,
                "idempotency_key": ev.idempotency_key, "received_at": now,
            }
            if not self._insert_events(session, [row]):
                session.rollback()
                used = self._used(session, ev.customer_id, ev.metric, period.start)
                session.commit()
                return result(True, used, duplicate=True)
            t = UsageCounter.__table__
            hard = amount is not None and kind == "hard"
            counter = None
            if not (hard and ev.quantity > amount):  # type: ignore[operator]
                counter = session.execute(
                    self._check_upsert[hard],
                    {"cid": ev.customer_id, "metric": ev.metric, "ps": period.start,
                     "pe": period.end, "q": ev.quantity, "now": now, "limit": amount},
                ).one_or_none()
            if counter is None:  # refused: undo the raw event, remember the limit was hit
                session.execute(delete(UsageEvent).where(
                    UsageEvent.customer_id == ev.customer_id,
                    UsageEvent.idempotency_key == ev.idempotency_key,
                ))
                cur = session.execute(
                    select(t.c.customer_id, t.c.metric, t.c.period_start, t.c.period_end, t.c.used,
                           t.c.crossed_80_at, t.c.crossed_100_at).where(
                        t.c.customer_id == ev.customer_id, t.c.metric == ev.metric,
                        t.c.period_start == period.start)
                ).one_or_none()
                crossings = []
                if cur is not None:
                    crossings = self._detect(session, [tuple(cur)], infos, now, refused=True)
                session.commit()
                return result(False, cur[4] if cur is not None else _ZERO, crossings=crossings)
            crossings = self._detect(session, [tuple(counter)], infos, now)
            session.commit()
            return result(True, counter[4], crossings=crossings)

    def _end_read_phase(self, session: Session) -> None:
        """On SQLite, end the read transaction before writing: a deferred transaction that
        reads and then writes fails at once (SQLITE_BUSY) when another writer got in between.
        PostgreSQL needs no such thing, and saves the round trip."""
        if self.dialect == "sqlite":
            session.commit()

    def _build_check_upserts(self) -> dict[bool, Any]:
        """The check's counter upsert, soft and hard, built once (bound per call)."""
        t = UsageCounter.__table__
        out = {}
        for hard in (False, True):
            stmt = self._insert(t).values(
                customer_id=bindparam("cid"), metric=bindparam("metric"),
                period_start=bindparam("ps", type_=t.c.period_start.type),
                period_end=bindparam("pe", type_=t.c.period_end.type),
                used=bindparam("q", type_=t.c.used.type),
                updated_at=bindparam("now", type_=t.c.updated_at.type),
            )
            out[hard] = stmt.on_conflict_do_update(
                index_elements=[t.c.customer_id, t.c.metric, t.c.period_start],
                set_={"used": t.c.used + stmt.excluded.used, "updated_at": stmt.excluded.updated_at},
                # A hard limit refuses inside the same statement that takes the row lock,
                # so racing requests can never admit more than the limit between them.
                where=(t.c.used + stmt.excluded.used <= bindparam("limit", type_=t.c.used.type))
                if hard else None,
            ).returning(t.c.customer_id, t.c.metric, t.c.period_start, t.c.period_end,
                        t.c.used, t.c.crossed_80_at, t.c.crossed_100_at)
        return out

    @staticmethod
    def _used(session: Session, customer_id: str, metric: str, period_start: dt.datetime) -> Decimal:
        used = session.scalar(select(UsageCounter.used).where(
            UsageCounter.customer_id == customer_id, UsageCounter.metric == metric,
            UsageCounter.period_start == period_start))
        return used if used is not None else _ZERO

    # -- entitlements --------------------------------------------------------------------

    def entitlements(self, customer_id: str, *, now: dt.datetime | None = None) -> dict[str, Any]:
        """Plan, features, and each metric's limit, used and remaining in the current period."""
        now = now or dt.datetime.now(dt.UTC)
        with self.session_factory() as session:
            info = load_customers(session, [customer_id]).get(customer_id)
            if info is None:
                raise UsageError("customer_id", f"unknown customer {customer_id[:128]!r}", status=404)
            period = info.period_at(max(now, info.created_at))
            used = dict(session.execute(
                select(UsageCounter.metric, UsageCounter.used).where(
                    UsageCounter.customer_id == customer_id,
                    UsageCounter.period_start == period.start,
                )
            ).all())
        plan = info.plan
        metrics: dict[str, Any] = {}
        for metric, unit in catalog.METRICS.items():
            lim = plan.limit(metric)
            u = used.get(metric, _ZERO)
            amount = Decimal(str(lim.amount)) if lim else None
            metrics[metric] = {
                "unit": lim.unit if lim and lim.unit else unit,
                "limit": number(amount),
                "limit_kind": lim.kind if lim else None,
                "used": number(u),
                "remaining": number(max(amount - u, _ZERO)) if amount is not None else None,
                "overage": number(max(u - amount, _ZERO)) if amount is not None else 0,
                "percent": round(float(u / amount * 100), 2) if amount else None,
                "allowed": not (lim is not None and lim.kind == "hard" and u >= amount),
            }
        nxt = catalog.next_plan_up(plan.code)
        upgrades = {}
        for feature, on in plan.features.items():
            if not on:
                cheapest = min((p for p in catalog.PLANS if p.features.get(feature)),
                               key=lambda p: p.rank, default=None)
                if cheapest is not None:
                    upgrades[feature] = {"code": cheapest.code, "name": cheapest.name,
                                         "monthly_price_cents": cheapest.monthly_price_cents}
        return {
            "customer_id": customer_id,
            "plan": {"code": plan.code, "name": plan.name,
                     "monthly_price_cents": plan.monthly_price_cents},
            "stage": info.stage,
            "features": dict(plan.features),
            "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
            "metrics": metrics,
            "next_plan": None if nxt is None else {
                "code": nxt.code, "name": nxt.name, "monthly_price_cents": nxt.monthly_price_cents,
                "adds": catalog.added_by(nxt, plan),
            },
            "feature_upgrades": upgrades,  # feature not in this plan -> the cheapest plan with it
        }

    # -- the signal outbox ---------------------------------------------------------------

    def pending_signals(
        self, *, now: dt.datetime | None = None, older_than: dt.timedelta = dt.timedelta(0),
        limit: int = 500,
    ) -> list[Crossing]:
        """Crossings not yet signalled whose retry time has come."""
        now = now or dt.datetime.now(dt.UTC)
        with self.session_factory() as session:
            rows = session.scalars(
                select(UsageSignal)
                .where(
                    UsageSignal.signalled_at.is_(None),
                    UsageSignal.crossed_at <= now - older_than,
                    (UsageSignal.next_attempt_at.is_(None)) | (UsageSignal.next_attempt_at <= now),
                )
                .order_by(UsageSignal.id)
                .limit(limit)
            ).all()
        return [crossing_from_row(r) for r in rows]

    def mark_signalled(self, signal_ids: Sequence[int], *, now: dt.datetime | None = None) -> None:
        if not signal_ids:
            return
        now = now or dt.datetime.now(dt.UTC)
        with self.session_factory() as session:
            session.execute(
                update(UsageSignal)
                .where(UsageSignal.id.in_(list(signal_ids)), UsageSignal.signalled_at.is_(None))
                .values(signalled_at=now, attempts=UsageSignal.attempts + 1, last_error=None)
            )
            session.commit()

    def mark_failed(self, signal_id: int, error: str, *, now: dt.datetime | None = None) -> None:
        """Count a failed attempt and back off (5 s doubling, at most an hour)."""
        now = now or dt.datetime.now(dt.UTC)
        with self.session_factory() as session:
            sig = session.get(UsageSignal, signal_id)
            if sig is None or sig.signalled_at is not None:
                return
            sig.attempts += 1
            sig.last_error = error[:2000]
            sig.next_attempt_at = now + dt.timedelta(seconds=min(5 * 2 ** (sig.attempts - 1), 3600))
            session.commit()

    # -- reconcile -----------------------------------------------------------------------

    def reconcile(self, *, fix: bool = False, customer_id: str | None = None) -> list[Drift]:
        """Recompute every counter from the raw events; report (and with ``fix`` repair) drift."""
        with self.session_factory() as session:
            ev = UsageEvent
            sums_q = select(ev.customer_id, ev.metric, ev.period_start, func.sum(ev.quantity)).group_by(
                ev.customer_id, ev.metric, ev.period_start)
            counters_q = select(UsageCounter.customer_id, UsageCounter.metric,
                                UsageCounter.period_start, UsageCounter.used)
            if customer_id is not None:
                sums_q = sums_q.where(ev.customer_id == customer_id)
                counters_q = counters_q.where(UsageCounter.customer_id == customer_id)
            actual = {(c, m, _utc(p)): _q(s) for c, m, p, s in session.execute(sums_q)}
            counted = {(c, m, p): _q(u) for c, m, p, u in session.execute(counters_q)}
            session.commit()
        drifts = []
        for key in sorted(set(actual) | set(counted)):
            a = actual.get(key, _ZERO)
            c = counted.get(key, _ZERO)
            if a != c:
                drifts.append(Drift(key[0], key[1], key[2], c, a))
        if fix:
            for d in drifts:
                self._with_retry(lambda d=d: self._fix(d))
                d.fixed = True
        return drifts

    def _fix(self, d: Drift) -> None:
        """Set one counter to the sum of its raw events, under the counter's row lock."""
        with self.session_factory() as session:
            where = and_(UsageCounter.customer_id == d.customer_id, UsageCounter.metric == d.metric,
                         UsageCounter.period_start == d.period_start)
            q = select(UsageCounter).where(where)
            if self.dialect == "postgresql":
                q = q.with_for_update()
            counter = session.scalars(q).one_or_none()
            actual = session.scalar(select(func.coalesce(func.sum(UsageEvent.quantity), 0)).where(
                UsageEvent.customer_id == d.customer_id, UsageEvent.metric == d.metric,
                UsageEvent.period_start == d.period_start))
            actual = _q(actual)
            if counter is None:
                info = load_customers(session, [d.customer_id]).get(d.customer_id)
                end = info.period_at(d.period_start).end if info else add_months(d.period_start, 1)
                session.add(UsageCounter(customer_id=d.customer_id, metric=d.metric,
                                         period_start=d.period_start, period_end=end, used=actual))
            else:
                counter.used = actual
            d.actual = actual
            session.commit()

    # -- export --------------------------------------------------------------------------

    def resolve_period(self, customer_id: str, spec: str) -> Period:
        """``YYYY-MM``: the billing period that starts in that month; ``YYYY-MM-DD``: the one
        containing that day; ``current``: today's."""
        with self.session_factory() as session:
            info = load_customers(session, [customer_id]).get(customer_id)
        if info is None:
            raise UsageError("customer", f"unknown customer {customer_id!r}", status=404)
        spec = spec.strip()
        if spec == "current":
            return info.period_at(max(dt.datetime.now(dt.UTC), info.created_at))
        m = re.fullmatch(r"(\d{4})-(\d{2})(?:-(\d{2}))?", spec)
        if not m:
            raise UsageError("period", f"expected YYYY-MM, YYYY-MM-DD or 'current', got {spec!r}")
        try:
            day = dt.datetime(int(m[1]), int(m[2]), int(m[3] or 1), tzinfo=dt.UTC)
        except ValueError as exc:
            raise UsageError("period", f"{spec!r} is not a date: {exc}") from None
        if m[3]:
            return info.period_at(max(day, info.created_at))
        # the period starting within that month: the one containing the month's last start
        month_end = add_months(day, 1)
        p = info.period_at(max(month_end - dt.timedelta(microseconds=1), info.created_at))
        if p.start < day:  # no period starts in that month (e.g. yearly): take the one covering it
            return info.period_at(max(day, info.created_at))
        return p

    def export_events(self, customer_id: str, period: Period) -> Iterator[UsageEvent]:
        with self.session_factory() as session:
            yield from session.scalars(
                select(UsageEvent)
                .where(UsageEvent.customer_id == customer_id,
                       UsageEvent.occurred_at >= period.start, UsageEvent.occurred_at < period.end)
                .order_by(UsageEvent.occurred_at, UsageEvent.id)
                .execution_options(yield_per=1000)
            )

    def export_csv(self, customer_id: str, period: Period, out: IO[str]) -> int:
        """Write the raw events of ``period`` as CSV; returns how many rows."""
        w = csv.writer(out)
        w.writerow(["event_id", "customer_id", "metric", "quantity", "occurred_at",
                    "idempotency_key", "received_at", "period_start"])
        n = 0
        for e in self.export_events(customer_id, period):
            w.writerow([e.id, e.customer_id, e.metric, format(e.quantity.normalize(), "f"),
                        e.occurred_at.isoformat(), e.idempotency_key, e.received_at.isoformat(),
                        e.period_start.isoformat()])
            n += 1
        return n


# --- helpers ----------------------------------------------------------------------------


def signal_event_id(customer_id: str, metric: str, period_start: dt.datetime, threshold: int) -> str:
    return f"usage:{customer_id}:{metric}:{period_start:%Y%m%d}:{threshold}"


def crossing_from_row(r: UsageSignal) -> Crossing:
    return Crossing(r.id, r.event_id, r.customer_id, r.metric, r.threshold, r.used,
                    r.limit_amount, r.limit_kind, r.period_start, r.period_end, r.plan_code)


def _q(value: Any) -> Decimal:
    """A stored quantity as a Decimal of 6 places (SQLite sums come back as floats)."""
    if value is None:
        return _ZERO
    return (value if isinstance(value, Decimal) else Decimal(str(value))).quantize(QUANTUM)


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _sqlite_time(value: dt.datetime) -> str:
    """How SQLAlchemy's SQLite DateTime stores a (naive UTC) datetime."""
    v = value.astimezone(dt.UTC)
    return (f"{v.year:04d}-{v.month:02d}-{v.day:02d} {v.hour:02d}:{v.minute:02d}:"
            f"{v.second:02d}.{v.microsecond:06d}")


__all__ = [
    "CheckResult", "Crossing", "CustomerInfo", "Drift", "EventIn", "EventResult",
    "IngestResult", "Period", "UsageError", "UsageService", "add_months",
    "load_customers", "number", "parse_event", "period_from_anchor", "signal_event_id",
]
