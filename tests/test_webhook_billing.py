"""What billing tells the product: subscribe and upgrade through the API against
localstripe, and the receiver hears ``subscription.changed``, ``customer.entitlements_changed``
and the stage change, each once, signed, in the order they happened."""

from __future__ import annotations

import httpx

from lifecycle.db import session_scope
from lifecycle.webhooks.endpoints import add_endpoint
from starter.api.app import create_app
from tests.support.stripe import new_customer_id, signed_up
from tests.support.webhook_receiver import receiving
from worker import build_worker

AUTH = {"Authorization": "Bearer test-key"}
TYPES = ["subscription.changed", "customer.entitlements_changed", "customer.stage_changed"]


async def test_a_subscription_and_an_upgrade_reach_the_product(
    client, stripe_settings, session_factory, synced
) -> None:
    settings = stripe_settings.model_copy(update={"webhook_retry_initial_seconds": 0.2,
                                                  "webhook_retry_max_seconds": 0.5})
    app = create_app(settings, temporal=client)
    async with receiving() as receiver, build_worker(client, settings, session_factory), \
            app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://api.test", headers=AUTH, timeout=60
            ) as http:
        with session_scope(session_factory) as s:
            receiver.secrets["/hooks"] = add_endpoint(
                s, receiver.url(), TYPES, engine_url=settings.public_url, allow_private=True, https_only=False).secret
        cid = new_customer_id("wh")
        await signed_up(client, settings, session_factory, cid)
        await receiver.until(lambda r: len(r.accepted()) == 1)  # trialing
        base = f"/v1/customers/{cid}/subscription"
        made = await http.post(base, json={"plan": "starter", "payment_method_id": "pm_card_visa"})
        assert made.status_code == 201, made.text
        up = await http.patch(base, json={"plan": "business"})
        assert up.status_code == 200, up.text
        await receiver.until(lambda r: any(e["type"] == "customer.entitlements_changed" for e in r.accepted()))
        await receiver.until(lambda r: sum(e["type"] == "subscription.changed" for e in r.accepted()) >= 2)
    events = [(e["type"], e["data"]) for e in receiver.accepted()]
    assert all(r.verified for r in receiver.requests)
    assert len({e["id"] for e in receiver.accepted()}) == len(events)  # each once
    kinds = [t for t, _ in events]
    subs = [d for t, d in events if t == "subscription.changed"]
    assert subs[0]["plan"] == "starter" and subs[0]["status"] == "active"
    assert subs[0]["stripe_subscription_id"] == made.json()["stripe_subscription_id"]
    assert subs[-1]["plan"] == "business"
    [ent] = [d for t, d in events if t == "customer.entitlements_changed"]
    assert ent == {"customer_id": cid, "reason": "plan_change", "from_plan": "starter", "plan": "business"}
    stages = [d["to_stage"] for t, d in events if t == "customer.stage_changed"]
    assert stages == ["trialing", "active"]
    # the subscription is told before the stage it moves; the plan change before its subscription
    assert kinds.index("subscription.changed") < kinds.index("customer.stage_changed", 1)
    assert kinds.index("customer.entitlements_changed") < len(kinds) - 1 - kinds[::-1].index("subscription.changed")
