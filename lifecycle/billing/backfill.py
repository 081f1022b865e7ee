"""Rebuild the mirror from Stripe's list endpoints (fresh install, or after an outage)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import stripe
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.billing.client import LOGGER_NAME, now_ts
from lifecycle.billing.mirror import (
    resolve_customer,
    upsert_invoice,
    upsert_payment,
    upsert_subscription,
)
from lifecycle.billing.payment_shapes import parse_payment
from lifecycle.billing.prices import record_price, record_product
from lifecycle.billing.shapes import (
    parse_customer,
    parse_invoice,
    parse_price,
    parse_subscription,
    to_plain,
)
from lifecycle.db import session_scope

log = logging.getLogger(LOGGER_NAME)

@dataclass
class BackfillReport:
    customers_linked: int = 0
    customers_adopted: int = 0
    subscriptions: int = 0
    invoices: int = 0
    payments: int = 0
    unmapped: int = 0  # subscriptions whose price maps to no tier


def backfill(client: stripe.StripeClient, factory: sessionmaker[Session]) -> BackfillReport:
    """Rebuild the mirror from Stripe's list endpoints (fresh install, or after an outage)."""
    report = BackfillReport()
    fetched = now_ts()
    emails: dict[str, str | None] = {}
    with session_scope(factory) as session:
        # the catalog first, so prices map by their product's metadata
        obj: Any
        for obj in client.v1.products.list(params={"limit": 100}).auto_paging_iter():
            record_product(session, to_plain(obj))
        for obj in client.v1.plans.list(params={"limit": 100}).auto_paging_iter():
            price = parse_price(to_plain(obj), kind="plan")
            if price is not None:
                record_price(session, price)
        try:
            for obj in client.v1.prices.list(params={"limit": 100}).auto_paging_iter():
                price = parse_price(to_plain(obj), kind="price")
                if price is not None:
                    record_price(session, price)
        except (stripe.InvalidRequestError, stripe.APIError) as exc:  # localstripe: no Prices API (404)
            if exc.http_status != 404:
                raise
            log.info("stripe backfill: no Prices API here (404); plans only")
        for obj in client.v1.customers.list(params={"limit": 100}).auto_paging_iter():
            rec_c = parse_customer(to_plain(obj))
            emails[rec_c.id] = rec_c.email
            if resolve_customer(session, rec_c.id, rec_c.metadata) is not None:
                report.customers_linked += 1
        session.flush()
        subs = client.v1.subscriptions.list(params={"status": "all", "limit": 100})
        for obj in subs.auto_paging_iter():
            rec = parse_subscription(to_plain(obj))
            res = upsert_subscription(session, rec, fetched, email=emails.get(rec.customer))
            report.subscriptions += 1
            report.customers_adopted += int(res.adopted)
            report.unmapped += int(res.unmapped_price is not None)
        for obj in client.v1.invoices.list(params={"limit": 100}).auto_paging_iter():
            upsert_invoice(session, parse_invoice(to_plain(obj)), fetched)
            report.invoices += 1
        for obj in client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter():
            upsert_payment(session, parse_payment(to_plain(obj)))
            report.payments += 1
    return report
