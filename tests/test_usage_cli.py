"""`lifecycle usage reconcile|export` on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

from sqlalchemy import update
from typer.testing import CliRunner

from lifecycle.models import UsageCounter
from lifecycle.usage import UsageService
from starter.cli.app import app
from tests.support.usage import Db


def run(db: Db, *args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, ["usage", *args], env={"LIFECYCLE_DATABASE_URL": db.url})
    return r.exit_code, r.stdout, r.stderr


def test_reconcile_reports_drift_then_fixes_it(usage_db: Db) -> None:
    cid = usage_db.customer("business")
    UsageService(usage_db.factory).ingest(
        [{"customer_id": cid, "metric": "ai_requests", "quantity": 3, "idempotency_key": f"k{i}"}
         for i in range(10)])
    code, out, _ = run(usage_db, "reconcile", "--customer", cid)
    assert (code, out.strip()) == (0, "no drift: every counter equals the sum of its raw events")
    with usage_db.factory() as s:  # a counter that lost an update
        s.execute(update(UsageCounter).where(UsageCounter.customer_id == cid).values(used=25))
        s.commit()
    code, out, _ = run(usage_db, "reconcile")
    assert code == 1
    [line] = [ln for ln in out.splitlines() if ln.startswith(cid)]
    assert line.split()[1] == "ai_requests" and line.split()[-4:] == ["25", "30", "-5", "no"]
    assert "--fix" in out
    code, out, _ = run(usage_db, "reconcile", "--fix")
    assert code == 0 and "fixed" in out
    code, out, _ = run(usage_db, "reconcile")
    assert code == 0 and "no drift" in out
    assert UsageService(usage_db.factory).entitlements(cid)["metrics"]["ai_requests"]["used"] == 30


def test_export_writes_the_periods_events_as_csv(usage_db: Db, tmp_path: Path) -> None:
    cid, cur = usage_db.aged_customer("business", days=50)
    old = cur.start - dt.timedelta(hours=5)
    UsageService(usage_db.factory).ingest([
        {"customer_id": cid, "metric": "ai_requests", "quantity": 7, "idempotency_key": "old",
         "timestamp": old.isoformat()},
        {"customer_id": cid, "metric": "seats", "quantity": 1, "idempotency_key": "new"},
    ])
    out_file = tmp_path / "dispute.csv"
    code, _, err = run(usage_db, "export", cid, "--period", f"{old:%Y-%m-%d}", "--out", str(out_file))
    assert code == 0 and "1 event(s)" in err
    rows = list(csv.DictReader(out_file.open()))
    assert [(r["idempotency_key"], r["metric"], r["quantity"]) for r in rows] == [("old", "ai_requests", "7")]
    code, out, _ = run(usage_db, "export", cid)  # the current period, to stdout
    assert code == 0
    assert [r["idempotency_key"] for r in csv.DictReader(io.StringIO(out))] == ["new"]
    code, _, err = run(usage_db, "export", cid, "--period", "last week")
    assert code == 2 and "period" in err and "YYYY-MM" in err
    code, _, err = run(usage_db, "export", "nobody", "--period", "current")
    assert code == 2 and "unknown customer" in err
