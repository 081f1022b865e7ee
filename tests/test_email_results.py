"""`lifecycle campaigns results` and `lifecycle outbox list|show` over real recorded sends."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from lifecycle.contracts.email import SendEmailInput
from lifecycle.contracts.policy import Conversion, EmailVariant
from lifecycle.db import session_scope
from lifecycle.email.providers import OutboxProvider
from lifecycle.email.results import campaign_results
from lifecycle.email.service import EmailService
from lifecycle.models import EmailMessage, Invoice
from starter.cli.email import campaigns_app, outbox_app
from tests.support.email import TEMPLATES, EmailDB, make_settings, utc

NOON = utc(2026, 3, 3, 12)
runner = CliRunner()


async def seed(db: EmailDB) -> dict[str, list[str]]:
    service = EmailService(db.factory, OutboxProvider(), make_settings(db.url, email_frequency_cap=0))
    variants = [EmailVariant("a", "welcome"), EmailVariant("b", "tip_api")]
    groups: dict[str, list[str]] = {"a": [], "b": [], "holdout": []}
    for i in range(30):
        cid = f"cus_r{i}"
        db.add_customer(cid)
        r = await service.send(SendEmailInput(
            customer_id=cid, template="welcome", idempotency_key=f"r{i}", campaign="onboarding",
            step="welcome", now=NOON, variants=variants, holdout=0.3))
        groups[r.variant].append(cid)
    return groups


def pay(db: EmailDB, cid: str, at: dt.datetime) -> None:
    with session_scope(db.factory) as s:
        s.add(Invoice(stripe_invoice_id=f"in_{cid}_{at:%j}", customer_id=cid, status="paid",
                      amount_due_cents=1900, amount_paid_cents=1900, paid_at=at))


def set_status(db: EmailDB, cid: str, status: str) -> None:
    with session_scope(db.factory) as s:
        row = s.scalar(select(EmailMessage).where(EmailMessage.customer_id == cid))
        row.status = status


async def test_results_per_variant_with_lift_over_holdout(
    email_db: EmailDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups = await seed(email_db)
    assert all(len(g) >= 3 for g in groups.values()), groups
    a, b, hold = groups["a"], groups["b"], groups["holdout"]
    set_status(email_db, a[0], "delivered")
    set_status(email_db, a[1], "opened")
    set_status(email_db, a[2], "clicked")
    pay(email_db, a[2], NOON + dt.timedelta(days=2))  # converted
    pay(email_db, a[1], NOON + dt.timedelta(days=9))  # too late: not a conversion
    pay(email_db, b[0], NOON - dt.timedelta(days=1))  # before the email: not a conversion
    pay(email_db, hold[0], NOON + dt.timedelta(days=1))  # converted without an email

    with session_scope(email_db.factory) as s:
        results = {g.variant: g for g in campaign_results(s, "onboarding", Conversion("paid", 7))}
    assert set(results) == {"a", "b", "holdout"}
    ra, rb, rh = results["a"], results["b"], results["holdout"]
    assert (ra.customers, ra.sent, ra.delivered, ra.opened, ra.clicked, ra.converted) == (
        len(a), len(a), 3, 2, 1, 1)
    assert (rb.converted, rh.sent, rh.converted, rh.customers) == (0, 0, 1, len(hold))
    assert ra.lift_pp == pytest.approx(100 * (1 / len(a) - 1 / len(hold)))
    assert rh.lift_pp is None

    monkeypatch.setenv("LIFECYCLE_DATABASE_URL", email_db.url)
    monkeypatch.setenv("LIFECYCLE_TEMPLATES_DIR", str(TEMPLATES))
    monkeypatch.setenv("COLUMNS", "200")
    out = runner.invoke(campaigns_app, ["results", "onboarding"])
    assert out.exit_code == 0, out.output
    assert "converted = paid within 14 days" in out.output  # the policy's definition
    line_a = next(line for line in out.output.splitlines() if "│ a " in line)
    assert "pp" in line_a
    assert "no emails recorded" in runner.invoke(campaigns_app, ["results", "nope"]).output


async def test_outbox_list_and_show(email_db: EmailDB, monkeypatch: pytest.MonkeyPatch) -> None:
    email_db.add_customer("cus_o", name="Mary Jackson")
    service = EmailService(email_db.factory, OutboxProvider(), make_settings(email_db.url))
    r = await service.send(SendEmailInput(customer_id="cus_o", template="welcome",
                                          idempotency_key="o1", campaign="onboarding",
                                          step="welcome", now=NOON))
    monkeypatch.setenv("LIFECYCLE_DATABASE_URL", email_db.url)
    monkeypatch.setenv("COLUMNS", "250")
    listed = runner.invoke(outbox_app, ["list", "--customer", "cus_o"])
    assert listed.exit_code == 0 and "Welcome aboard, Mary" in listed.output
    shown = runner.invoke(outbox_app, ["show", str(r.message_id)])
    assert shown.exit_code == 0
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in shown.output
    assert "Welcome, Mary!" in shown.output  # the text part, in full
    assert runner.invoke(outbox_app, ["show", "999999"]).exit_code == 1
