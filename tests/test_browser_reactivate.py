"""In Debian's Chromium, driven by Playwright: a canceled customer opens the win-back
email's reactivation link, sees the plan and the offer, reactivates in one click and is
``won_back`` with the coupon on the new subscription. The app is served by uvicorn on a
real port; the time-skipping server runs the real workflows and activities (Stripe =
localstripe behind the recording proxy, which shows the coupon the engine sent: coupons
cannot be read back from localstripe). Screenshots at desktop width and at 320 px go to
``LIFECYCLE_TEST_SCREENSHOTS`` when it is set (the test asserts the layout either way)."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn

from lifecycle.usage.periods import add_months
from starter.api.app import create_app
from tests.conftest import free_port
from tests.support.helpers import eventually
from tests.support.retention import AUTH, Retained, reactivate_link, retention_settings
from tests.test_browser import browser  # noqa: F401  (the Chromium fixture)
from worker import build_worker

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("ts_env")]


@pytest.fixture
async def served(
    stripe_settings, client, session_factory, synced, recording_stripe
) -> AsyncIterator[Retained]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = retention_settings(stripe_settings, recording_stripe, public_url=url)
    server = uvicorn.Server(uvicorn.Config(
        create_app(settings, temporal=client), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    ))
    task = asyncio.create_task(server.serve())
    try:
        async with build_worker(client, settings, session_factory):
            await eventually(lambda: server.started, timeout=20)
            async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60) as http:
                yield Retained(http, client, settings, session_factory, recording_stripe)
    finally:
        server.should_exit = True
        await task


def _day(at: datetime) -> str:
    return f"{at.day} {at:%B %Y}"


async def _no_horizontal_scroll(page) -> bool:
    return await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


async def test_a_canceled_customer_reactivates_from_the_email_link_in_a_browser(
    ts_env, served: Retained, browser, stripe_client  # noqa: F811
) -> None:
    cid = await served.subscriber("professional")
    r = await served.http.delete(f"/v1/customers/{cid}/subscription", params={"at_once": "true"})
    assert r.status_code == 200 and r.json()["status"] == "canceled", r.text
    await ts_env.sleep(timedelta(days=7, hours=1))
    [email] = await eventually(lambda: served.winback_emails(cid), timeout=30)
    link = reactivate_link(email)
    assert link.startswith(f"{served.settings.public_url}/billing/reactivate?token=")

    shots = os.environ.get("LIFECYCLE_TEST_SCREENSHOTS")
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    await page.goto(link)
    assert await page.title() == "Come back to Professional"
    table = await page.locator("table").inner_text()
    assert "30% off for 3 months" in table and "$49/month" in table
    # before the one click that charges: what today costs, the next payment and its date
    now = datetime.now(UTC)
    assert re.search(r"Charged today\s+\$34\.30", table), table
    assert re.search(rf"Next payment\s+\$34\.30 on {_day(add_months(now, 1))}", table), table
    assert re.search(rf"Then\s+\$49/month from {_day(add_months(now, 3))}", table), table
    button = page.get_by_role("button", name="Reactivate Professional")
    assert await button.is_visible() and await button.is_enabled()
    # the form carries the token in its body, not in its URL
    action = await page.locator("form").get_attribute("action")
    assert action == "/billing/reactivate"
    posted: list[tuple[str, str]] = []
    page.on("request", lambda req: posted.append((req.url, req.post_data or "")) if req.method == "POST" else None)
    if shots:
        await page.screenshot(path=str(Path(shots) / "reactivate-desktop.png"), full_page=True)
    await page.set_viewport_size({"width": 320, "height": 640})
    assert await _no_horizontal_scroll(page)
    box = await button.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 320
    if shots:
        await page.screenshot(path=str(Path(shots) / "reactivate-320.png"), full_page=True)

    await button.click()
    await page.wait_for_load_state()
    assert await page.title() == "Welcome back!"
    [(url, body)] = posted
    assert url == f"{served.settings.public_url}/billing/reactivate" and body.startswith("token=")
    assert "30% off for 3 months" in await page.content()
    if shots:
        await page.screenshot(path=str(Path(shots) / "reactivated-320.png"), full_page=True)

    state = await served.state(cid)
    assert (state.stage, state.billing.status) == ("won_back", "active")
    [row] = served.reactivations(cid)
    sent = [x.form for x in served.stripe.posts("/v1/subscriptions") if x.path == "/v1/subscriptions"]
    assert sent[-1]["discounts[0][coupon]"] == row.coupon_id  # the coupon, on the new subscription
    assert stripe_client.v1.coupons.retrieve(row.coupon_id).percent_off == 30.0
    assert stripe_client.v1.subscriptions.retrieve(state.billing.stripe_subscription_id).status == "active"

    # the same link again: the customer is told they are already subscribed
    await page.goto(link)
    assert await page.title() == "You are already subscribed"
