"""GET /v1/customers/{id} and `lifecycle customer show` show the save offer and win-back
state: after a real decline, reactivation and the campaign's start (time-skipping server,
real activities against localstripe, the CLI as a subprocess on the same database)."""

from __future__ import annotations

import pytest

from tests.support.helpers import eventually
from tests.support.retention import Retained
from tests.test_cli import run

pytestmark = pytest.mark.usefixtures("ts_env")


async def test_the_customer_view_and_the_cli_show_offers_and_win_back(retained: Retained) -> None:
    cid = await retained.subscriber()
    offer = (await retained.http.delete(f"/v1/customers/{cid}/subscription", params={"reason": "too_expensive"})).json()
    open_view = (await retained.http.get(f"/v1/customers/{cid}")).json()["winback"]
    assert open_view["state"]["offer"]["status"] == "open"
    assert open_view["save_offers"][0]["kind"] == "coupon"

    await retained.http.post(f"/v1/customers/{cid}/subscription/offers/{offer['save_offer']['offer_id']}/decline")
    await retained.http.delete(f"/v1/customers/{cid}/subscription", params={"at_once": "true"})

    async def winback_running() -> dict:
        view = (await retained.http.get(f"/v1/customers/{cid}")).json()
        return view if "winback" in view["running_campaigns"] else {}

    view = await eventually(winback_running)
    assert (view["stage"], view["winback"]["state"]["winbacks"], view["winback"]["state"]["winback_variant"]) == (
        "canceled", 1, "churned")
    assert {"campaign": "winback", "step": "winback_day_7"}.items() <= next(
        s for s in view["next_steps"] if s["campaign"] == "winback").items()
    assert view["winback"]["state"]["offer"]["status"] == "declined"
    assert [(r["reason"], r["outcome"]) for r in view["winback"]["cancellation_requests"]] == [
        (None, "canceled"), ("too_expensive", "cancel_scheduled")]  # newest first

    shown = run(retained.settings, "customer", "show", cid)
    assert shown.returncode == 0, shown.stderr
    assert "save offer" in shown.stdout and "25% off 3 months for too_expensive: declined" in shown.stdout
    assert "reason=too_expensive outcome=cancel_scheduled" in shown.stdout
