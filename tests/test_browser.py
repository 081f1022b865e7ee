"""In Debian's Chromium, driven by Playwright: a customer opens the welcome email and
follows its unsubscribe link on the real stack (dev server, `lifecycle worker`,
`lifecycle api`). Without /usr/bin/chromium these skip with the reason (`make test`
installs it where it can), except under CI=true, where they fail."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from lifecycle.models import Suppression
from tests.conftest import IN_CI, Stack
from tests.support.helpers import emails, eventually
from workflows.customer import CustomerWorkflow

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.e2e


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not installed (Debian package chromium)"
        if IN_CI:
            pytest.fail(f"{reason}; CI=true: browser tests must run")
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield b
        finally:
            await b.close()


async def test_the_welcome_email_renders_and_its_unsubscribe_link_works_in_a_browser(
    stack: Stack, dev_env, browser, session_factory
) -> None:
    sessions = session_factory
    r = await stack.http.post(
        "/v1/events/signup", json={"customer_id": "web-1", "email": "grace@web.test", "name": "Grace Hopper"}
    )
    assert r.status_code == 201, r.text
    [welcome] = await eventually(
        lambda: [m for m in emails(sessions, "web-1") if m.template == "welcome" and m.status == "sent"],
        timeout=30,
    )

    page = await browser.new_page()  # type: ignore[attr-defined]
    # the email as a mail client shows it: styles inlined, preheader hidden, button styled
    await page.set_content(welcome.html)
    assert await page.locator("h1").inner_text() == "Welcome, Grace!"
    assert not await page.locator(".preheader").is_visible()
    button_color = await page.locator("a.button").evaluate("a => getComputedStyle(a).backgroundColor")
    assert button_color not in ("rgba(0, 0, 0, 0)", "transparent")  # the layout's button style applies
    assert 'style="' in welcome.html  # inlined, not only in <style>

    # the footer's unsubscribe link, as the customer clicks it
    link = await page.get_by_role("link", name=re.compile("unsubscribe", re.I)).get_attribute("href")
    assert link and link.startswith(f"{stack.url}/unsubscribe?token=")
    await page.goto(link)
    assert "Unsubscribe" in await page.title()
    with sessions() as s:  # opening the page (as a link scanner would) changes nothing
        assert s.scalars(select(Suppression)).all() == []
    await page.get_by_role("button", name="Unsubscribe").click()
    await page.wait_for_load_state()
    assert "You are unsubscribed" in await page.content()

    with sessions() as s:
        [sup] = s.scalars(select(Suppression)).all()
    assert (sup.customer_id, sup.reason) == ("web-1", "unsubscribe")
    handle = dev_env.client.get_workflow_handle("customer-web-1")

    async def heard() -> bool:
        return (await handle.query(CustomerWorkflow.state)).marketing_opt_out

    await eventually(heard, timeout=20)
