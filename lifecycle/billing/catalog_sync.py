"""The plan catalog in Stripe: :func:`sync_catalog` makes Stripe hold a product per tier
and a monthly and an annual plan per product (the Plans API: on real Stripe a plan is
also a price; localstripe has no Prices API). Plan ids are derived from tier, interval,
amount and currency, so a second run finds everything and changes nothing, and a price
change creates a new plan and retires the old one for new subscriptions (existing ones
keep theirs). :func:`active_price` is the plan new subscriptions use.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import stripe
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.billing.client import LOGGER_NAME, MD_INTERVAL, MD_PLAN
from lifecycle.billing.shapes import as_bool
from lifecycle.contracts import catalog
from lifecycle.db import session_scope
from lifecycle.models import PlanPrice, PlanRow

log = logging.getLogger(LOGGER_NAME)

class CatalogNotSynced(LookupError):
    """No active Stripe plan for a tier and interval: run `lifecycle stripe sync`."""


def product_id_for(plan_code: str) -> str:
    return f"lifecycle-{plan_code}"


def plan_id_for(plan_code: str, interval: str, amount_cents: int, currency: str = "usd") -> str:
    return f"lifecycle-{plan_code}-{interval}-{amount_cents}-{currency}"


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.retired)


def _retrieve_or_none(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            return None
        raise


def sync_catalog(
    client: stripe.StripeClient,
    factory: sessionmaker[Session],
    plans: Iterable[catalog.Plan] = catalog.PLANS,
    currency: str = "usd",
) -> SyncReport:
    """Create or update the tiers in Stripe and record their ids; idempotent."""
    report = SyncReport()
    with session_scope(factory) as session:
        for plan in plans:
            row = session.get(PlanRow, plan.code)
            if row is None:
                raise CatalogNotSynced(
                    f"plan {plan.code!r} is not in the database: run `lifecycle db upgrade` first"
                )
            pid = product_id_for(plan.code)
            product = _retrieve_or_none(functools.partial(client.v1.products.retrieve, pid))
            if product is None:
                client.v1.products.create(
                    params={
                        "id": pid,
                        "name": plan.name,
                        "description": plan.tagline or plan.name,
                        "metadata": {MD_PLAN: plan.code},
                    },
                    options={"idempotency_key": f"catalog:{pid}"},
                )
                report.created.append(pid)
            elif product.name != plan.name:
                client.v1.products.update(pid, params={"name": plan.name})
                report.updated.append(pid)
            else:
                report.unchanged.append(pid)
            row.stripe_product_id = pid

            for interval in ("month", "year"):
                amount = plan.price_cents(interval)
                want = plan_id_for(plan.code, interval, amount, currency)
                existing = _retrieve_or_none(functools.partial(client.v1.plans.retrieve, want))
                if existing is None:
                    client.v1.plans.create(
                        params={
                            "id": want,
                            "product": pid,
                            "amount": amount,
                            "currency": currency,
                            "interval": interval,
                            "nickname": f"{plan.name} ({interval}ly)",
                            "metadata": {MD_PLAN: plan.code, MD_INTERVAL: interval},
                        },
                        options={"idempotency_key": f"catalog:{want}"},
                    )
                    report.created.append(want)
                elif not as_bool(existing.active):
                    client.v1.plans.update(want, params={"active": True})
                    report.updated.append(want)
                else:
                    report.unchanged.append(want)
                price = session.scalar(select(PlanPrice).where(PlanPrice.stripe_plan_id == want))
                if price is None:
                    price = PlanPrice(
                        plan_code=plan.code,
                        interval=interval,
                        amount_cents=amount,
                        currency=currency,
                        stripe_plan_id=want,
                    )
                    session.add(price)
                price.active = True

                # Retire every other plan of this tier and interval: known ones from the
                # database, and any in Stripe under our product (e.g. from another install).
                in_stripe = client.v1.plans.list(params={"product": pid, "limit": 100})
                others: dict[str, Any] = {}
                for p in in_stripe.auto_paging_iter():
                    if p.id != want and p.interval == interval:
                        others[p.id] = p
                for old in session.scalars(
                    select(PlanPrice).where(
                        PlanPrice.plan_code == plan.code,
                        PlanPrice.interval == interval,
                        PlanPrice.stripe_plan_id != want,
                    )
                ):
                    others.setdefault(old.stripe_plan_id, None)
                for old_id, obj in others.items():
                    old_row = session.scalar(
                        select(PlanPrice).where(PlanPrice.stripe_plan_id == old_id)
                    )
                    if old_row is None and obj is not None:
                        old_row = PlanPrice(
                            plan_code=plan.code,
                            interval=interval,
                            amount_cents=int(obj.amount or 0),
                            currency=obj.currency or currency,
                            stripe_plan_id=old_id,
                            active=False,
                        )
                        session.add(old_row)
                    stripe_active = obj is not None and as_bool(obj.active)
                    db_active = old_row is not None and old_row.active
                    if stripe_active:
                        client.v1.plans.update(old_id, params={"active": False})
                    if old_row is not None:
                        old_row.active = False
                    if stripe_active or db_active:
                        report.retired.append(old_id)
                session.flush()
    log.info(
        "stripe catalog sync: %d created, %d updated, %d retired, %d unchanged",
        len(report.created),
        len(report.updated),
        len(report.retired),
        len(report.unchanged),
    )
    return report


def active_price(session: Session, plan_code: str, interval: str) -> PlanPrice:
    """The Stripe plan new subscriptions to this tier and interval use."""
    catalog.get_plan(plan_code)  # KeyError with the list of tiers if unknown
    price = session.scalar(
        select(PlanPrice)
        .where(
            PlanPrice.plan_code == plan_code,
            PlanPrice.interval == interval,
            PlanPrice.active.is_(True),
        )
        .order_by(PlanPrice.id.desc())
    )
    if price is None:
        raise CatalogNotSynced(
            f"no Stripe plan for {plan_code}/{interval}: run `lifecycle stripe sync`"
        )
    return price
