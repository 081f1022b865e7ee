"""An existing Stripe account's own prices count as their tier (issue 13).

Current-shape subscription events (a ``price`` on each item, periods on the item, expanded
discounts) are built in the tests and signed with the webhook secret; the backfill runs
against localstripe, which has no Prices API (404) and so holds legacy plans only: there
the plans carry the metadata and the custom ids.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from lifecycle.billing.backfill import backfill
from lifecycle.billing.prices import configure_price_tiers
from lifecycle.billing.webhooks import process_event
from lifecycle.contracts import catalog
from lifecycle.db import session_scope
from lifecycle.models import Customer, StripeEvent, Subscription
from starter.api.app import create_app
from starter.cli.app import app as cli_app
from tests.support.helpers import add_customer, customer_row
from tests.support.stripe import add_card, new_customer_id, signed_event

AUTH = {"Authorization": "Bearer test-key"}
DAY = 86400


@pytest.fixture(autouse=True)
def _no_price_tiers_left_behind():
    yield
    configure_price_tiers({})


async def _api(settings, client) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, temporal=client)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test", headers=AUTH
        ) as http:
            yield http


@pytest.fixture
async def api(stripe_settings, client) -> AsyncIterator[httpx.AsyncClient]:
    async for http in _api(stripe_settings, client):
        yield http


def price(
    amount: int,
    *,
    interval: str = "month",
    metadata: dict[str, str] | None = None,
    lookup_key: str | None = None,
    product: Any = None,
    price_id: str | None = None,
) -> dict[str, Any]:
    """A current-shape price (not created by the engine: a random id, a foreign product)."""
    return {
        "id": price_id or f"price_{uuid.uuid4().hex[:14]}",
        "object": "price",
        "active": True,
        "currency": "usd",
        "unit_amount": amount,
        "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"},
        "product": product or f"prod_{uuid.uuid4().hex[:14]}",
        "lookup_key": lookup_key,
        "metadata": metadata or {},
        "type": "recurring",
    }


def subscription(
    stripe_customer: str, p: dict[str, Any], *, sub_id: str | None = None, status: str = "active",
    quantity: int = 1, discounts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    now = int(time.time())
    length = 365 * DAY if p["recurring"]["interval"] == "year" else 30 * DAY
    return {
        "id": sub_id or f"sub_{uuid.uuid4().hex[:14]}",
        "object": "subscription",
        "customer": stripe_customer,
        "status": status,
        "cancel_at_period_end": False,
        "created": now - DAY,
        "metadata": {},
        "discounts": discounts or [],
        "latest_invoice": None,
        "items": {
            "object": "list",
            "data": [
                {
                    "id": f"si_{uuid.uuid4().hex[:14]}",
                    "object": "subscription_item",
                    "price": p,
                    "quantity": quantity,
                    "current_period_start": now - DAY,
                    "current_period_end": now - DAY + length,
                }
            ],
        },
    }


def customer_on(session_factory, plan: str) -> tuple[str, str]:
    """(our id, Stripe's id) of a customer of ours on ``plan``, linked to a Stripe customer."""
    cid = new_customer_id()
    add_customer(session_factory, cid, plan=plan)
    stripe_id = f"cus_{uuid.uuid4().hex[:14]}"
    with session_scope(session_factory) as s:
        s.get(Customer, cid).stripe_customer_id = stripe_id
    return cid, stripe_id


async def send(api, type_: str, obj: dict[str, Any], created: int | None = None) -> str:
    event, body, headers = signed_event(type_, obj, created=created or int(time.time()))
    r = await api.post("/webhooks/stripe", content=body, headers=headers)
    assert r.status_code == 200, r.text
    return event["id"]


async def assert_entitled_to(api, cid: str, tier: str) -> None:
    """What the product sees: the tier's plan, features and limits."""
    plan = catalog.get_plan(tier)
    ent = (await api.get(f"/v1/customers/{cid}/entitlements")).json()
    assert ent["plan"]["code"] == tier
    assert ent["features"] == plan.features
    for metric in catalog.METRICS:
        assert ent["metrics"][metric]["limit"] == plan.limit(metric).amount


def cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli_app, ["stripe", *args], env={"COLUMNS": "250", **env})
    return r.exit_code, r.stdout


@pytest.mark.parametrize("how", ["price_metadata", "product_expanded", "product_event", "lookup_key", "setting"])
async def test_a_foreign_price_maps_to_its_tier_and_the_entitlements_follow(
    how, stripe_settings, client, session_factory
):
    settings = stripe_settings
    if how == "price_metadata":
        p, tier = price(9900, metadata={"tier": "business"}), "business"
    elif how == "product_expanded":
        p = price(19900, product={"id": "prod_x1", "object": "product", "metadata": {"tier": "enterprise"}})
        tier = "enterprise"
    elif how == "product_event":
        p, tier = price(4900, product=f"prod_{uuid.uuid4().hex[:10]}"), "professional"
    elif how == "lookup_key":
        p, tier = price(199000, interval="year", lookup_key="enterprise-annual"), "enterprise"
    else:
        p, tier = price(9900), "business"
        settings = stripe_settings.model_copy(update={"stripe_price_tiers": {p["id"]: "business"}})
    cid, stripe_id = customer_on(session_factory, "starter")

    async for api in _api(settings, client):
        if how == "product_event":  # the product arrives first, by itself; the price names it by id
            await send(api, "product.created", {"id": p["product"], "object": "product", "name": "Team",
                                                "metadata": {"tier": "professional"}, "active": True})
        await send(api, "customer.subscription.created", subscription(stripe_id, p))

        mirror = (await api.get(f"/v1/customers/{cid}/subscription")).json()
        assert (mirror["plan"], mirror["plan_mapped"], mirror["stripe_price_id"]) == (tier, True, p["id"])
        assert (mirror["interval"], mirror["amount_cents"]) == (p["recurring"]["interval"], p["unit_amount"])
        assert customer_row(session_factory, cid).plan_code == tier
        await assert_entitled_to(api, cid, tier)
    env = {"LIFECYCLE_DATABASE_URL": settings.database_url}
    if how == "setting":
        env["LIFECYCLE_STRIPE_PRICE_TIERS"] = f"{p['id']}=business"
    code, out = cli(env, "prices")
    line = next(x for x in out.splitlines() if p["id"] in x)
    source = {"product_expanded": "product_metadata", "product_event": "product_metadata"}.get(how, how)
    assert f" {tier} " in line and f" {source} " in line and code == 0


async def test_an_unmapped_price_is_never_starter_leaves_the_plan_and_is_reported(
    api, stripe_settings, session_factory
):
    cid, stripe_id = customer_on(session_factory, "professional")
    p = price(19900)  # no metadata, no lookup key, an unknown product, not in the setting
    metrics_before = (await api.get("/metrics")).text
    event_id = await send(api, "customer.subscription.created", subscription(stripe_id, p))

    mirror = (await api.get(f"/v1/customers/{cid}/subscription")).json()
    assert mirror["plan"] == f"unmapped price {p['id']}" and mirror["plan_mapped"] is False
    assert (mirror["status"], mirror["interval"], mirror["amount_cents"]) == ("active", "month", 19900)
    assert customer_row(session_factory, cid).plan_code == "professional"  # kept, not starter
    await assert_entitled_to(api, cid, "professional")

    def counter(text: str) -> float:
        line = next((x for x in text.splitlines() if x.startswith("lifecycle_stripe_unmapped_prices_total")), None)
        return float(line.split()[-1]) if line else 0.0

    assert counter((await api.get("/metrics")).text) == counter(metrics_before) + 1
    env = {"LIFECYCLE_DATABASE_URL": stripe_settings.database_url}
    _, events_out = cli(env, "events")
    assert f"unmapped price {p['id']}" in events_out
    code, prices_out = cli(env, "prices", "--unmapped")
    assert code == 1 and p["id"] in prices_out and "none" in prices_out

    # ops map it (the setting here), then replay the event: the tier applies
    configure_price_tiers({p["id"]: "enterprise"})
    assert process_event(session_factory, event_id, force=True).status == "processed"  # what replay runs
    assert customer_row(session_factory, cid).plan_code == "enterprise"
    await assert_entitled_to(api, cid, "enterprise")
    with session_factory() as s:
        assert s.get(StripeEvent, event_id).note is None


async def test_a_customer_first_seen_on_an_unmapped_price_gets_no_tier_not_starters_limits(
    api, session_factory
):
    stripe_id = f"cus_{uuid.uuid4().hex[:14]}"  # made in the Stripe dashboard: not ours yet
    p = price(19900)
    event_id = await send(api, "customer.subscription.created", subscription(stripe_id, p))

    with session_factory() as s:
        adopted = s.scalar(select(Customer).where(Customer.stripe_customer_id == stripe_id))
        assert adopted is not None and adopted.plan_code is None
        cid = adopted.id
    ent = (await api.get(f"/v1/customers/{cid}/entitlements")).json()
    assert ent["plan"] is None and ent["unmapped_price"] == p["id"] and "no tier" in ent["note"]
    assert all(m["limit"] is None and m["allowed"] for m in ent["metrics"].values())
    # Starter allows 1,000 AI requests (hard): far more are counted, none refused
    starter_calls = catalog.get_plan("starter").limit("ai_requests").amount
    r = await api.post("/v1/usage/check", json={
        "customer_id": cid, "metric": "ai_requests", "quantity": starter_calls * 3,
        "idempotency_key": f"k-{uuid.uuid4().hex}"})
    assert r.status_code == 200 and r.json()["allowed"] is True, r.text
    assert r.json()["limit"] is None and r.json()["used"] == starter_calls * 3
    view = (await api.get(f"/v1/customers/{cid}")).json()
    assert view["plan"] is None
    mirror = (await api.get(f"/v1/customers/{cid}/subscription")).json()
    assert mirror["plan"] == f"unmapped price {p['id']}"

    configure_price_tiers({p["id"]: "enterprise"})  # ops map it, then replay
    assert process_event(session_factory, event_id, force=True).status == "processed"
    assert customer_row(session_factory, cid).plan_code == "enterprise"
    await assert_entitled_to(api, cid, "enterprise")


async def test_upgrade_between_two_foreign_prices_changes_the_entitlements(api, session_factory):
    cid, stripe_id = customer_on(session_factory, "starter")
    business = price(9900, lookup_key="business_monthly")
    enterprise = price(19900, metadata={"tier": "enterprise"})
    sub = subscription(stripe_id, business)
    t0 = int(time.time())
    await send(api, "customer.subscription.created", sub, created=t0)
    await assert_entitled_to(api, cid, "business")

    upgraded = subscription(stripe_id, enterprise, sub_id=sub["id"], quantity=2, discounts=[
        {"id": "di_1", "object": "discount", "coupon": {"id": "launch", "object": "coupon", "percent_off": 25}},
        {"id": "di_2", "object": "discount", "coupon": {"id": "loyal", "object": "coupon", "amount_off": 1000}},
    ])
    await send(api, "customer.subscription.updated", upgraded, created=t0 + 10)

    await assert_entitled_to(api, cid, "enterprise")
    mirror = (await api.get(f"/v1/customers/{cid}/subscription")).json()
    assert mirror["plan"] == "enterprise"
    assert mirror["amount_cents"] == round(19900 * 2 * 0.75) - 1000  # quantity, then the discounts


def test_backfill_of_an_account_whose_plans_the_engine_did_not_make(
    stripe_client, session_factory, sqlite_url, synced
):
    """localstripe has plans, not prices (the Prices API answers 404): the account's own
    plans carry the tier in their metadata, their product's metadata, or their id."""
    tag = uuid.uuid4().hex[:8]
    product = stripe_client.v1.products.create(params={"name": f"Gold {tag}", "metadata": {"tier": "business"}})
    plain = stripe_client.v1.products.create(params={"name": f"Plain {tag}"})
    plans = {
        "product_metadata": (f"gold-{tag}", product.id, {}, "business"),
        "price_metadata": (f"team-{tag}", plain.id, {"tier": "professional"}, "professional"),
        "lookup_key": (f"enterprise-annual-{tag}", plain.id, {}, "enterprise"),
        "unmapped": (f"legacy-{tag}", plain.id, {}, None),
    }
    expected: dict[str, str | None] = {}
    for plan_id, product_id, metadata, tier in plans.values():
        stripe_client.v1.plans.create(params={
            "id": plan_id, "product": product_id, "amount": 5000, "currency": "usd",
            "interval": "year" if "annual" in plan_id else "month", "metadata": metadata,
        })
        cus = stripe_client.v1.customers.create(params={"email": f"{plan_id}@example.test"})
        add_card(stripe_client, cus.id)
        stripe_client.v1.subscriptions.create(params={"customer": cus.id, "items": [{"plan": plan_id}]})
        expected[cus.id] = tier

    report = backfill(stripe_client, session_factory)

    assert report.unmapped >= 1
    with session_factory() as s:
        for stripe_customer, tier in expected.items():
            row = s.scalar(select(Subscription).join(Customer, Customer.id == Subscription.customer_id)
                           .where(Customer.stripe_customer_id == stripe_customer))
            assert row.plan_code == tier and row.amount_cents == 5000
            # a customer first seen here on an unmapped plan has no tier (never Starter's)
            assert s.get(Customer, row.customer_id).plan_code == tier
    code, out = cli({"LIFECYCLE_DATABASE_URL": sqlite_url}, "prices")
    assert code == 1  # one billed plan maps to no tier
    for how, (plan_id, *_rest, tier) in plans.items():
        line = next(x for x in out.splitlines() if plan_id[:20] in x)
        assert (tier or "none") in line and (tier is None or f" {how} " in line), line
