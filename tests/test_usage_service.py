"""Usage service on SQLite and PostgreSQL: exact-once counting, limits, periods, thresholds,
reconcile and export."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from sqlalchemy import delete, func, select, update

from lifecycle.models import Subscription, UsageCounter, UsageEvent, UsageSignal
from lifecycle.usage import (
    UsageService,
    add_months,
    period_from_anchor,
    signal_event_id,
)
from tests.support.usage import Db

UTC = dt.UTC


def ev(cid: str, key: str, qty: float = 1, metric: str = "ai_requests", ts: dt.datetime | None = None):
    out = {"customer_id": cid, "metric": metric, "quantity": qty, "idempotency_key": key}
    if ts is not None:
        out["timestamp"] = ts.isoformat()
    return out


def counter(db: Db, cid: str, metric: str = "ai_requests") -> list[tuple[dt.datetime, Decimal]]:
    with db.factory() as s:
        return list(s.execute(select(UsageCounter.period_start, UsageCounter.used).where(
            UsageCounter.customer_id == cid, UsageCounter.metric == metric
        ).order_by(UsageCounter.period_start)))


def raw_sum(db: Db, cid: str, metric: str = "ai_requests") -> tuple[int, Decimal]:
    with db.factory() as s:
        n, total = s.execute(select(func.count(), func.coalesce(func.sum(UsageEvent.quantity), 0))
                             .where(UsageEvent.customer_id == cid, UsageEvent.metric == metric)).one()
    return n, Decimal(str(total))


def signals(db: Db, cid: str) -> list[tuple[str, int, str]]:
    with db.factory() as s:
        return list(s.execute(select(UsageSignal.metric, UsageSignal.threshold, UsageSignal.event_id)
                              .where(UsageSignal.customer_id == cid).order_by(UsageSignal.id)))


# --- periods ----------------------------------------------------------------------------


def test_months_clamp_to_the_end_of_shorter_months() -> None:
    jan31 = dt.datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert add_months(jan31, 1) == dt.datetime(2026, 2, 28, 12, tzinfo=UTC)
    assert add_months(jan31, 2) == dt.datetime(2026, 3, 31, 12, tzinfo=UTC)
    assert add_months(jan31, -2) == dt.datetime(2025, 11, 30, 12, tzinfo=UTC)
    p = period_from_anchor(dt.datetime(2026, 3, 1, tzinfo=UTC), jan31)
    assert (p.start, p.end) == (dt.datetime(2026, 2, 28, 12, tzinfo=UTC),
                                dt.datetime(2026, 3, 31, 12, tzinfo=UTC))
    y = period_from_anchor(dt.datetime(2028, 2, 1, tzinfo=UTC), jan31, 12)
    assert (y.start, y.end) == (dt.datetime(2028, 1, 31, 12, tzinfo=UTC),
                                dt.datetime(2029, 1, 31, 12, tzinfo=UTC))


def test_period_follows_the_subscription_then_steps_from_it(usage_db: Db) -> None:
    now = dt.datetime.now(UTC)
    start, end = now - dt.timedelta(days=10), now + dt.timedelta(days=18)
    cid = usage_db.customer(created_at=now - dt.timedelta(days=200), subscription=(start, end))
    with usage_db.factory() as s:  # an older, canceled subscription does not count
        s.add(Subscription(stripe_subscription_id=f"sub_old_{cid}", customer_id=cid, plan_code="starter",
                           interval="month", status="canceled",
                           current_period_start=start - dt.timedelta(days=3),
                           current_period_end=end - dt.timedelta(days=3)))
        s.commit()
    svc = UsageService(usage_db.factory)
    svc.ingest([ev(cid, "in", ts=now), ev(cid, "before", ts=start - dt.timedelta(days=1))])
    periods = [p for p, _ in counter(usage_db, cid)]
    assert periods == [add_months(start, -1), start]
    ent = svc.entitlements(cid, now=now)
    assert ent["period"] == {"start": start.isoformat(), "end": end.isoformat()}
    assert ent["metrics"]["ai_requests"]["used"] == 1


# --- exact once -------------------------------------------------------------------------


def test_replayed_batch_and_repeated_keys_count_once(usage_db: Db) -> None:
    cid = usage_db.customer("business")
    svc = UsageService(usage_db.factory)
    batch = [ev(cid, f"k{i}", qty=i % 7 + 0.5) for i in range(300)]
    first = svc.ingest(batch)
    assert (first.count("accepted"), first.count("duplicate")) == (300, 0)
    for _ in range(2):  # the client retries the whole batch
        again = svc.ingest(batch)
        assert (again.count("accepted"), again.count("duplicate")) == (0, 300)
        assert {r.reason for r in again.results} == {"already recorded"}
    single = svc.ingest([ev(cid, "k5", qty=1000)])  # same key, other content: still a duplicate
    assert single.results[0].status == "duplicate"
    within = svc.ingest([ev(cid, "new", 2), ev(cid, "new", 2)])
    assert [r.status for r in within.results] == ["accepted", "duplicate"]
    expected = sum(Decimal(str(i % 7 + 0.5)) for i in range(300)) + 2
    n, total = raw_sum(usage_db, cid)
    assert (n, total) == (301, expected)
    assert [u for _, u in counter(usage_db, cid)] == [expected]
    # the same key for another customer is that customer's own event
    other = usage_db.customer("business")
    assert svc.ingest([ev(other, "k1")]).results[0].status == "accepted"


def test_a_bad_event_never_sinks_the_good_ones(usage_db: Db) -> None:
    cid = usage_db.customer("business")
    svc = UsageService(usage_db.factory)
    now = dt.datetime.now(UTC)
    batch = [
        ev(cid, "good1"),
        ev("no-such-customer", "x1"),
        {**ev(cid, "neg"), "quantity": -3},
        {**ev(cid, "str"), "quantity": "five"},
        ev(cid, "metric", metric="gpu_hours"),
        ev(cid, "future", ts=now + dt.timedelta(days=2)),
        ev(cid, "ancient", ts=now - dt.timedelta(days=30)),
        {"customer_id": cid, "metric": "ai_requests"},
        "not an object",
        ev(cid, "good2", 2),
    ]
    res = svc.ingest(batch)
    got = {r.index: (r.status, r.field) for r in res.results}
    assert got == {
        0: ("accepted", None),
        1: ("rejected", "customer_id"),
        2: ("rejected", "quantity"),
        3: ("rejected", "quantity"),
        4: ("rejected", "metric"),
        5: ("rejected", "timestamp"),
        6: ("rejected", "timestamp"),
        7: ("rejected", "idempotency_key"),
        8: ("rejected", "event"),
        9: ("accepted", None),
    }
    reasons = {r.index: r.reason for r in res.results}
    assert "before the customer existed" in reasons[6]
    assert "future" in reasons[5]
    assert "negative" in reasons[2]
    assert raw_sum(usage_db, cid) == (2, Decimal(3))


# --- limits -----------------------------------------------------------------------------


def test_hard_limit_refuses_and_soft_limit_flags_overage(usage_db: Db) -> None:
    cid = usage_db.customer("starter")  # ai_requests 1,000 hard; storage_gb 5 soft
    svc = UsageService(usage_db.factory)
    ok = svc.check({"customer_id": cid, "metric": "ai_requests", "quantity": 999})
    assert ok.allowed and ok.remaining == 1
    refused = svc.check({"customer_id": cid, "metric": "ai_requests", "quantity": 2,
                         "idempotency_key": "too-many"})
    assert not refused.allowed
    assert refused.remaining == 1 and refused.used == 999
    assert "hard limit" in refused.as_dict()["reason"]
    assert raw_sum(usage_db, cid) == (1, Decimal(999))  # the refused request left no event
    last = svc.check({"customer_id": cid, "metric": "ai_requests", "idempotency_key": "last"})
    assert last.allowed and last.remaining == 0
    assert not svc.check({"customer_id": cid, "metric": "ai_requests"}).allowed
    # a retry of an already recorded request is answered, not counted again
    again = svc.check({"customer_id": cid, "metric": "ai_requests", "idempotency_key": "last"})
    assert again.allowed and again.duplicate and again.used == 1000

    soft = svc.check({"customer_id": cid, "metric": "storage_gb", "quantity": 6.5})
    assert soft.allowed and soft.overage == Decimal("1.5") and soft.remaining == 0
    ent = svc.entitlements(cid)
    assert ent["metrics"]["storage_gb"] == {
        "unit": "GB", "limit": 5, "limit_kind": "soft", "used": 6.5, "remaining": 0,
        "overage": 1.5, "percent": 130.0, "allowed": True}
    assert ent["metrics"]["ai_requests"]["allowed"] is False
    assert ent["features"]["api_access"] is False
    assert ent["next_plan"]["name"] == "Professional"


def test_plan_change_takes_effect_at_once(usage_db: Db) -> None:
    cid = usage_db.customer("starter")
    svc = UsageService(usage_db.factory)
    assert svc.check({"customer_id": cid, "metric": "ai_requests", "quantity": 1000}).allowed
    assert not svc.check({"customer_id": cid, "metric": "ai_requests"}).allowed
    usage_db.set_plan(cid, "professional")
    after = svc.check({"customer_id": cid, "metric": "ai_requests"})
    assert after.allowed and after.limit == 10_000 and after.used == 1001
    ent = svc.entitlements(cid)
    assert ent["plan"]["code"] == "professional" and ent["features"]["api_access"] is True
    assert ent["metrics"]["ai_requests"]["remaining"] == 8999


# --- thresholds -------------------------------------------------------------------------


def test_thresholds_fire_once_per_period(usage_db: Db) -> None:
    cid = usage_db.customer("starter")
    svc = UsageService(usage_db.factory)
    r1 = svc.ingest([ev(cid, f"a{i}") for i in range(799)])
    assert r1.crossings == []
    r2 = svc.ingest([ev(cid, "a799"), ev(cid, "a800")])
    assert [(c.metric, c.threshold, c.used) for c in r2.crossings] == [("ai_requests", 80, 801)]
    assert svc.ingest([ev(cid, f"b{i}") for i in range(100)]).crossings == []
    assert svc.ingest([ev(cid, "a799")]).crossings == []  # a replay crosses nothing
    hit = svc.check({"customer_id": cid, "metric": "ai_requests", "quantity": 99})
    assert [c.threshold for c in hit.crossings] == [100]
    assert not svc.check({"customer_id": cid, "metric": "ai_requests"}).crossings
    # jumping over both lines at once sends the 100 % notice only
    jump = usage_db.customer("starter")
    res = svc.ingest([ev(jump, "big", metric="storage_gb", qty=10)])
    assert [(c.threshold, c.limit_kind) for c in res.crossings] == [(100, "soft")]
    sigs = signals(usage_db, cid)
    assert [(m, t) for m, t, _ in sigs] == [("ai_requests", 80), ("ai_requests", 100)]
    period = counter(usage_db, cid)[0][0]
    assert sigs[0][2] == signal_event_id(cid, "ai_requests", period, 80)
    assert sigs[0][2].startswith(f"usage:{cid}:ai_requests:{period:%Y%m%d}:")


def test_refusal_at_the_hard_limit_counts_as_reaching_it(usage_db: Db) -> None:
    cid = usage_db.customer("starter")
    svc = UsageService(usage_db.factory)
    svc.check({"customer_id": cid, "metric": "ai_requests", "quantity": 990})
    refused = svc.check({"customer_id": cid, "metric": "ai_requests", "quantity": 20})
    assert not refused.allowed
    assert [c.threshold for c in refused.crossings] == [100]


def test_new_period_starts_counters_and_thresholds_afresh(usage_db: Db) -> None:
    cid, current = usage_db.aged_customer("starter", days=45)
    svc = UsageService(usage_db.factory)
    last_period_day = current.start - dt.timedelta(days=2)
    old = svc.ingest([ev(cid, f"old{i}", ts=last_period_day) for i in range(900)])
    assert old.count("accepted") == 900
    assert old.crossings == []  # the old period is closed: recorded, nobody nudged
    fresh = svc.check({"customer_id": cid, "metric": "ai_requests", "quantity": 1000})
    assert fresh.allowed and fresh.used == 1000  # the old 900 do not count now
    assert [c.threshold for c in fresh.crossings] == [100]
    assert fresh.crossings[0].period_start == current.start
    assert [u for _, u in counter(usage_db, cid)] == [900, 1000]
    ent = svc.entitlements(cid)
    assert ent["metrics"]["ai_requests"]["used"] == 1000
    # the next period, seen from its first day
    nxt = svc.entitlements(cid, now=current.end + dt.timedelta(hours=1))
    assert nxt["metrics"]["ai_requests"]["used"] == 0
    assert nxt["period"]["start"] == current.end.isoformat()


# --- the outbox -------------------------------------------------------------------------


def test_failed_signals_back_off_and_stay_pending_until_marked(usage_db: Db) -> None:
    cid = usage_db.customer("starter")
    svc = UsageService(usage_db.factory)
    [c] = svc.ingest([ev(cid, "big", qty=850)]).crossings
    mine = lambda: [p for p in svc.pending_signals() if p.customer_id == cid]  # noqa: E731
    assert [p.event_id for p in mine()] == [c.event_id]
    svc.mark_failed(c.signal_id, "temporal unreachable")
    assert mine() == []  # backing off
    later = dt.datetime.now(UTC) + dt.timedelta(seconds=6)
    assert [p.event_id for p in svc.pending_signals(now=later) if p.customer_id == cid] == [c.event_id]
    svc.mark_signalled([c.signal_id])
    assert [p for p in svc.pending_signals(now=later) if p.customer_id == cid] == []


# --- accuracy tools ---------------------------------------------------------------------


def test_reconcile_finds_injected_drift_and_fixes_it(usage_db: Db) -> None:
    a = usage_db.customer("business")
    b = usage_db.customer("business")
    svc = UsageService(usage_db.factory)
    svc.ingest([ev(a, f"k{i}", 1.25) for i in range(40)] + [ev(b, "s", 3, metric="seats")])
    assert svc.reconcile(customer_id=a) == []
    with usage_db.factory() as s:
        s.execute(update(UsageCounter).where(UsageCounter.customer_id == a)
                  .values(used=UsageCounter.used + 7))
        s.execute(delete(UsageCounter).where(UsageCounter.customer_id == b))
        s.commit()
    drifts = [d for d in svc.reconcile() if d.customer_id in (a, b)]
    assert [(d.customer_id, d.metric, d.counted, d.actual, d.drift) for d in drifts] == sorted([
        (a, "ai_requests", Decimal(57), Decimal(50), Decimal(7)),
        (b, "seats", Decimal(0), Decimal(3), Decimal(-3)),
    ])
    assert not any(d.fixed for d in drifts)
    fixed = svc.reconcile(fix=True)
    assert {(d.customer_id, d.fixed) for d in fixed if d.customer_id in (a, b)} == {(a, True), (b, True)}
    assert [d for d in svc.reconcile() if d.customer_id in (a, b)] == []
    assert [u for _, u in counter(usage_db, a)] == [50]
    assert [u for _, u in counter(usage_db, b, "seats")] == [3]


def test_export_writes_one_periods_raw_events(usage_db: Db) -> None:
    cid, cur = usage_db.aged_customer("business", days=70)
    svc = UsageService(usage_db.factory)
    prev_day = cur.start - dt.timedelta(days=1)
    svc.ingest([ev(cid, "p1", 2, ts=prev_day), ev(cid, "p2", 0.5, metric="storage_gb", ts=prev_day),
                ev(cid, "c1", 4)])
    period = svc.resolve_period(cid, f"{prev_day:%Y-%m-%d}")
    assert period.contains(prev_day) and period.end == cur.start
    assert svc.resolve_period(cid, f"{cur.start:%Y-%m}") == cur
    buf = io.StringIO()
    assert svc.export_csv(cid, period, buf) == 2
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert sorted((r["idempotency_key"], r["metric"], r["quantity"]) for r in rows) == [
        ("p1", "ai_requests", "2"), ("p2", "storage_gb", "0.5")]
    assert all(dt.datetime.fromisoformat(r["occurred_at"]) == prev_day for r in rows)


@pytest.mark.parametrize("spec", ["2026", "2026-13", "last month", "2026-02-30"])
def test_export_rejects_a_bad_period(usage_db: Db, spec: str) -> None:
    from lifecycle.usage import UsageError

    cid = usage_db.customer()
    with pytest.raises(UsageError) as err:
        UsageService(usage_db.factory).resolve_period(cid, spec)
    assert err.value.field == "period"


def test_a_batch_over_many_customers_counts_each_one(usage_db: Db) -> None:
    cids = [usage_db.customer("starter") for _ in range(40)]
    svc = UsageService(usage_db.factory)
    batch = [ev(cids[i % 40], f"m{i}", qty=(i % 40) + 1) for i in range(800)]  # 20 events each
    res = svc.ingest(batch)
    assert res.count("accepted") == 800
    # customer k got 20 events of k+1: those at k+1 >= 40 (20 * 40 = 800 of 1,000) crossed 80 %
    assert sorted(c.customer_id for c in res.crossings) == sorted(cids[39:])
    for k, cid in enumerate(cids):
        assert [u for _, u in counter(usage_db, cid)] == [Decimal(20 * (k + 1))]
    again = svc.ingest(batch)
    assert again.count("duplicate") == 800 and again.crossings == []
    assert [d for d in svc.reconcile() if d.customer_id in cids] == []
