"""Retry mode engine with Stripe's Smart Retries left on: an invoice whose ``attempt_count``
grows beyond its first charge and the engine's own attempts was retried by Stripe. Warned
once per invoice (a log line, ``lifecycle_stripe_side_retries_total`` in /metrics, a line in
the ops digest), not once per event. The invoice is real (localstripe); the
``invoice.payment_failed`` events Stripe would send are built around it and signed."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from lifecycle.billing.charges import STRIPE_RETRY_SEEN
from lifecycle.billing.webhooks import process_event, record_event
from lifecycle.contracts.billing import RetryInvoiceInput, StartSubscriptionInput
from lifecycle.db import session_scope
from starter.api.app import create_app
from starter.ops.digest import digest
from tests.support.helpers import timeline
from tests.support.stripe import FAILING_CARD, customer_with_card, make_event, signed_event
from tests.test_cli import run

AUTH = {"Authorization": "Bearer test-key"}


@pytest.fixture
async def api(stripe_settings, client, synced) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(stripe_settings, temporal=client)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test", headers=AUTH, timeout=60
        ) as http:
            yield http


def _metric(text: str) -> float:
    line = next(x for x in text.splitlines() if x.startswith("lifecycle_stripe_side_retries_total "))
    return float(line.split()[1])


async def test_a_stripe_side_retry_in_engine_mode_is_warned_once_per_invoice(
    api, session_factory, stripe_acts, stripe_client, stripe_settings, caplog
):
    cid, _ = await customer_with_card(session_factory, stripe_acts, stripe_client, card=FAILING_CARD)
    started = await stripe_acts.start_subscription(StartSubscriptionInput(cid, "business", f"{cid}:subscribe"))
    invoice: dict[str, Any] = stripe_client.v1.invoices.retrieve(started.latest_invoice_id).to_dict()
    before = _metric((await api.get("/metrics")).text)

    async def failed(attempt: int) -> None:
        _e, body, headers = signed_event("invoice.payment_failed", {**invoice, "attempt_count": attempt})
        assert (await api.post("/webhooks/stripe", content=body, headers=headers)).status_code == 200

    caplog.set_level(logging.WARNING, logger="lifecycle.billing")
    await failed(1)  # Stripe's own first charge
    await stripe_acts.retry_invoice(RetryInvoiceInput(cid, invoice["id"], f"{cid}:dunning:retry_1"))
    await failed(2)  # the engine's retry
    assert [e for e in timeline(session_factory, cid) if e.kind == STRIPE_RETRY_SEEN] == []
    assert _metric((await api.get("/metrics")).text) == before

    await failed(3)  # nobody here charged: Stripe retried
    await failed(4)  # and again: still one warning
    seen = [e for e in timeline(session_factory, cid) if e.kind == STRIPE_RETRY_SEEN]
    assert [(e.detail["invoice"], e.detail["attempt_count"], e.detail["engine_attempts"]) for e in seen] == [
        (invoice["id"], 3, 1)
    ]
    assert _metric((await api.get("/metrics")).text) == before + 1
    warned = [r for r in caplog.records if "Smart Retries" in r.getMessage()]
    assert len(warned) == 1 and invoice["id"] in warned[0].getMessage()
    with session_factory() as s:
        lines = digest(s, since=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    assert [line for line in lines if invoice["id"] in line and "Smart Retries still on" in line]
    shown = run(stripe_settings, "ops", "digest", "--hours", "1")  # as ops reads it
    assert shown.returncode == 0 and invoice["id"] in shown.stdout, shown.stderr


async def test_in_stripe_mode_stripes_retries_are_expected(session_factory, stripe_acts, stripe_client):
    cid, _ = await customer_with_card(session_factory, stripe_acts, stripe_client, card=FAILING_CARD)
    started = await stripe_acts.start_subscription(StartSubscriptionInput(cid, "business", f"{cid}:subscribe"))
    invoice = stripe_client.v1.invoices.retrieve(started.latest_invoice_id).to_dict()
    event = make_event("invoice.payment_failed", {**invoice, "attempt_count": 5})
    with session_scope(session_factory) as s:
        record_event(s, event)
    assert process_event(session_factory, event["id"], engine_retries=False).status == "processed"
    assert [e for e in timeline(session_factory, cid) if e.kind == STRIPE_RETRY_SEEN] == []
