"""Record the retention histories the replay tests keep: the entity's save-offer and
win-back paths (customer_retention_*) and the win-back child (winback_*).

Run after an intended, versioned change to workflows/retention/entity.py or workflows/retention/winback.py:

    .venv/bin/python -m tests.record_retention_histories vN   # a new suffix

Everything runs for real, on the harness of tests/record_histories.py: the time-skipping
server, the worker from worker.py with the real activities, Stripe = a localstripe of its
own, the HTTP API and the reactivation page in process. The histories carry ids only (the
customers' emails and names stay in the database; checked below).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from lifecycle.billing.client import make_stripe_client
from lifecycle.contracts.customer import CustomerEvent, CustomerState
from lifecycle.contracts.ids import campaign_workflow_id, customer_workflow_id
from lifecycle.models import EmailMessage
from starter.api.app import create_app
from starter.signals.send import signal_customer, start_input
from tests.record_histories import HERE, Recording, main, save, stripe_recording
from tests.support.helpers import add_customer
from tests.support.stripe import signed_event
from workflows.customer import CustomerWorkflow

API_KEY = "record-key"
CUSTOMERS = ("rec-r1", "rec-r2", "rec-r3", "rec-r4", "rec-r5", "rec-r6", "rec-r7", "rec-r8", "rec-r9", "rec-r10")
NAMES = (
    "customer_retention_offer_expired",
    "customer_retention_pause",
    "customer_retention_won_back",
    "customer_retention_lost",
    "winback_reactivated",
    "winback_trial_lost",
    "customer_retention_offer_withdrawn",
    "customer_retention_offer_renewal_ended",
    "customer_retention_annual_coupon",
    "customer_retention_annual_won_back",
    "winback_annual_reactivated",
    "customer_retention_pause_access",
    "customer_retention_offer_ended_unheard",
)


class RecordingFailed(RuntimeError):
    pass


async def _until(what: str, probe: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool]) -> Any:
    deadline = time.monotonic() + 30
    while True:
        value = await probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise RecordingFailed(f"{what}: not reached in 30 s (last: {value})")
        await asyncio.sleep(0.1)


def _ok(what: str, r: httpx.Response) -> dict[str, Any]:
    if r.status_code >= 300:
        raise RecordingFailed(f"{what}: HTTP {r.status_code}: {r.text}")
    return dict(r.json()) if r.headers.get("content-type", "").startswith("application/json") else {}


async def record(suffix: str = "v1") -> list[Path]:
    written: list[Path] = []
    async with stripe_recording("record-retention", api_keys=[API_KEY]) as rec:
        app = create_app(rec.settings, temporal=rec.client)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://api.record",
                headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60,
            ) as api,
        ):
            histories = await _run_paths(rec, api)
        for name, wid in histories.items():
            if (HERE / f"{name}.{suffix}.json").exists():
                # kept from an earlier slice under the same suffix: the new paths only
                print("kept", name)
                continue
            path = await save(rec.client, name, wid, suffix)
            text = path.read_text()
            if any(f"{cid}@example.test" in text or "Ada Lovelace" in text for cid in CUSTOMERS):
                path.unlink()
                raise RecordingFailed(f"{name}: the history carries personal data")
            written.append(path)
    return written


async def _run_paths(rec: Recording, api: httpx.AsyncClient) -> dict[str, str]:
    client, env = rec.client, rec.env

    async def state(cid: str) -> CustomerState:
        return await client.get_workflow_handle(customer_workflow_id(cid)).query(CustomerWorkflow.state)

    async def subscribed(cid: str, interval: str = "month") -> None:
        add_customer(rec.sessions, cid)
        await signal_customer(client, cid, CustomerEvent(f"signup:{cid}", "signup"),
                              start=start_input(rec.settings, cid, "starter"), task_queue=rec.settings.task_queue)
        _ok("subscribe", await api.post(f"/v1/customers/{cid}/subscription", json={
            "plan": "professional", "interval": interval, "payment_method_id": "pm_card_visa"}))

    # 1. an offer not answered in its window: the cancellation goes ahead at period end
    await subscribed("rec-r1")
    offered = _ok("cancel", await api.delete("/v1/customers/rec-r1/subscription", params={"reason": "too_expensive"}))
    if offered["outcome"] != "save_offered":
        raise RecordingFailed(f"rec-r1: no offer: {offered}")
    await env.sleep(timedelta(days=7, hours=1))
    await _until("rec-r1 expiry", lambda: state("rec-r1"), lambda s: s.winback.offer.status == "expired")

    # 2. a pause accepted, then billing resumes at its end
    await subscribed("rec-r2")
    offered = _ok("cancel", await api.delete("/v1/customers/rec-r2/subscription", params={"reason": "temporary"}))
    _ok("accept", await api.post(f"/v1/customers/rec-r2/subscription/offers/{offered['save_offer']['offer_id']}/accept"))
    await env.sleep(timedelta(days=61))
    await _until("rec-r2 resume", lambda: state("rec-r2"), lambda s: s.winback.paused_until is None)

    # 3. canceled, the day-7 win-back email, reactivated from its link: won back
    await subscribed("rec-r3")
    _ok("cancel now", await api.delete("/v1/customers/rec-r3/subscription", params={"at_once": "true"}))
    await _until("rec-r3 winback", lambda: state("rec-r3"), lambda s: "winback" in s.campaigns)
    await env.sleep(timedelta(days=7, hours=1))

    async def winback_email(cid: str = "rec-r3") -> str | None:
        with rec.sessions() as s:
            html = s.scalar(select(EmailMessage.html).where(
                EmailMessage.customer_id == cid, EmailMessage.campaign == "winback"))
        found = re.search(r'href="[^"]*(/billing/reactivate\?token=[^"]+)"', html or "")
        return found.group(1) if found else None

    link = await _until("rec-r3 email", winback_email, bool)
    page = await api.post(link)
    if "Welcome back!" not in page.text:
        raise RecordingFailed(f"rec-r3: not reactivated: {page.text}")
    await _until("rec-r3 won back", lambda: state("rec-r3"), lambda s: s.stage == "won_back")

    # 4. a trial that expired: the trial variant, no answer: lost
    add_customer(rec.sessions, "rec-r4")
    await signal_customer(client, "rec-r4", CustomerEvent("signup:rec-r4", "signup"),
                          start=start_input(rec.settings, "rec-r4", "starter"), task_queue=rec.settings.task_queue)
    await env.sleep(timedelta(days=14, hours=1))
    await _until("rec-r4 expired", lambda: state("rec-r4"), lambda s: "winback" in s.campaigns)
    await env.sleep(timedelta(days=75))
    await _until("rec-r4 lost", lambda: state("rec-r4"), lambda s: s.stage == "lost")

    # 5. a cancel without a reason while the offer is open: the offer is withdrawn, and its
    # window's end carries nothing out again
    await subscribed("rec-r5")
    offered = _ok("cancel", await api.delete("/v1/customers/rec-r5/subscription", params={"reason": "too_expensive"}))
    if offered["outcome"] != "save_offered":
        raise RecordingFailed(f"rec-r5: no offer: {offered}")
    _ok("plain cancel", await api.delete("/v1/customers/rec-r5/subscription"))
    await _until("rec-r5 withdrawn", lambda: state("rec-r5"), lambda s: s.winback.offer.status == "withdrawn")
    await env.sleep(timedelta(days=8))

    # 6. the period ends inside the offer's window: Stripe (told when the offer was made)
    # ends the subscription instead of renewing it; the window's end records the cancellation
    await subscribed("rec-r6")
    offered = _ok("cancel", await api.delete("/v1/customers/rec-r6/subscription", params={"reason": "too_expensive"}))
    stripe = make_stripe_client(rec.settings)
    stripe.v1.subscriptions.cancel(offered["stripe_subscription_id"])
    _e, body, headers = signed_event("customer.subscription.deleted",
                                     stripe.v1.subscriptions.retrieve(offered["stripe_subscription_id"]),
                                     created=int(time.time()) + 5)
    _ok("webhook", await api.post("/webhooks/stripe", content=body, headers=headers))
    await _until("rec-r6 ended", lambda: state("rec-r6"), lambda s: s.stage == "canceled")
    await env.sleep(timedelta(days=7, hours=1))
    await _until("rec-r6 expiry", lambda: state("rec-r6"), lambda s: s.winback.offer.status == "expired")

    # 7. an annual subscriber takes the coupon offer: the terms for the annual interval
    await subscribed("rec-r7", "year")
    offered = _ok("cancel", await api.delete("/v1/customers/rec-r7/subscription", params={"reason": "too_expensive"}))
    _ok("accept", await api.post(f"/v1/customers/rec-r7/subscription/offers/{offered['save_offer']['offer_id']}/accept"))
    await _until("rec-r7 saved", lambda: state("rec-r7"), lambda s: s.winback.offer.status == "accepted")

    # 8. an annual subscriber canceled, won back from the day-7 email (the year's price, the
    # once coupon)
    await subscribed("rec-r8", "year")
    _ok("cancel now", await api.delete("/v1/customers/rec-r8/subscription", params={"at_once": "true"}))
    await _until("rec-r8 winback", lambda: state("rec-r8"), lambda s: "winback" in s.campaigns)
    await env.sleep(timedelta(days=7, hours=1))
    link = await _until("rec-r8 email", lambda: winback_email("rec-r8"), bool)
    page = await api.post(link)
    if "Welcome back!" not in page.text:
        raise RecordingFailed(f"rec-r8: not reactivated: {page.text}")
    await _until("rec-r8 won back", lambda: state("rec-r8"), lambda s: s.stage == "won_back")

    # 9. a pause accepted: access as the policy says (none) until billing resumes
    await subscribed("rec-r9")
    offered = _ok("cancel", await api.delete("/v1/customers/rec-r9/subscription", params={"reason": "temporary"}))
    _ok("accept", await api.post(f"/v1/customers/rec-r9/subscription/offers/{offered['save_offer']['offer_id']}/accept"))
    await _until("rec-r9 paused", lambda: state("rec-r9"), lambda s: s.winback.paused_access == "none")
    await env.sleep(timedelta(days=61))
    await _until("rec-r9 resumed", lambda: state("rec-r9"),
                 lambda s: s.winback.paused_until is None and s.winback.paused_access is None)

    # 10. Stripe ended the subscription inside the window, unheard: the accept is refused
    # (nothing restarted) and the window, armed again, closes the offer as asked
    await subscribed("rec-r10")
    offered = _ok("cancel", await api.delete("/v1/customers/rec-r10/subscription", params={"reason": "too_expensive"}))
    make_stripe_client(rec.settings).v1.subscriptions.cancel(offered["stripe_subscription_id"])
    late = await api.post(f"/v1/customers/rec-r10/subscription/offers/{offered['save_offer']['offer_id']}/accept")
    if late.status_code != 409:
        raise RecordingFailed(f"rec-r10: accept after the end: HTTP {late.status_code}: {late.text}")
    await env.sleep(timedelta(days=8))
    await _until("rec-r10 expired", lambda: state("rec-r10"), lambda s: s.winback.offer.status == "expired")

    return dict(zip(NAMES, (
        customer_workflow_id("rec-r1"),
        customer_workflow_id("rec-r2"),
        customer_workflow_id("rec-r3"),
        customer_workflow_id("rec-r4"),
        campaign_workflow_id("rec-r3", "winback", "1"),
        campaign_workflow_id("rec-r4", "winback", "1"),
        customer_workflow_id("rec-r5"),
        customer_workflow_id("rec-r6"),
        customer_workflow_id("rec-r7"),
        customer_workflow_id("rec-r8"),
        campaign_workflow_id("rec-r8", "winback", "1"),
        customer_workflow_id("rec-r9"),
        customer_workflow_id("rec-r10"),
    ), strict=True))


if __name__ == "__main__":
    main(record)
