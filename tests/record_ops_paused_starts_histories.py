"""Record the histories of campaigns started while ops has marketing paused
(tests/histories/*ops_started_paused*.json, customer_ops_paused_starts.*.json): an entity
paused before its annual subscription and its offers, whose renewal reminders start
paused (the 30-day one comes due while paused and goes out once at resume), whose team
promotion starts paused (its input says so) and goes out at resume, and whose expansion
offer, held the same way, is skipped by ops.

    .venv/bin/python -m tests.record_ops_paused_starts_histories vN   # a new suffix
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from lifecycle.contracts.events import Activation, UsageThreshold
from lifecycle.contracts.ids import campaign_workflow_id, customer_workflow_id, renewal_workflow_id
from lifecycle.contracts.ops import WAIT_PAUSED, WAIT_TIMER
from starter.ops.actions import ActionRequest, take_action
from starter.ops.why import why_waiting
from tests.record_growth_histories import _active, _annual, _send
from tests.record_histories import main, recording, save
from tests.support.helpers import eventually

CID = "rec-p1"


def _act(action: str, **kw: str) -> ActionRequest:
    return ActionRequest(action=action, reason="recorded for the replay tests", actor="recorder", **kw)


async def record(suffix: str = "v1") -> list[Path]:
    async with recording("record") as rec:
        client, sessions, env = rec.client, rec.sessions, rec.env

        async def waits(campaign: str, kind: str, step: str) -> bool:
            try:
                why = await why_waiting(client, CID)
            except Exception:  # noqa: BLE001  (not started yet)
                return False
            return any(c.campaign == campaign and c.waiting.kind == kind and c.step == step for c in why.campaigns)

        async def finished(campaign: str) -> bool:  # the entity heard it end
            return all(c.campaign != campaign for c in (await why_waiting(client, CID)).campaigns)

        now = await env.get_current_time()
        end = now + timedelta(days=60)
        renewal = f"renewal/{end:%Y%m%d}"
        await _active(rec, CID, "professional")
        await take_action(client, sessions, CID, _act("pause"))
        # started while paused: the renewal reminders, the team promotion, the expansion offer
        await _send(rec, CID, "sub:1", _annual(CID, "professional", end))
        await eventually(lambda: waits(renewal, WAIT_TIMER, "renewal_30_days"))
        for i in range(3):
            await _send(rec, CID, f"invite:{i}", Activation(fact="invited_teammate"))
        await eventually(lambda: waits("team_promotion", WAIT_PAUSED, "team_promotion"))
        start = now - timedelta(days=30)
        for i in range(2):
            a, b = start + timedelta(days=30 * i), start + timedelta(days=30 * (i + 1))
            await _send(rec, CID, f"usage:{i}", UsageThreshold(
                metric="ai_requests", threshold=80, used=8000, limit=10000, limit_kind="hard",
                period_start=a, period_end=b, plan="professional"))
        await eventually(lambda: waits("expansion", WAIT_PAUSED, "expansion_offer"))
        # the expansion offer skipped while held; the 30-day reminder comes due while paused
        await take_action(client, sessions, CID, _act("skip-step", campaign="expansion"))
        expansion = campaign_workflow_id(CID, "expansion", f"{start + timedelta(days=30):%Y%m%d}")
        await client.get_workflow_handle(expansion).result()
        await env.sleep(timedelta(days=31))
        await eventually(lambda: waits(renewal, WAIT_PAUSED, "renewal_30_days"))
        # resumed: the reminder and the promotion go out, once; the 7-day reminder on its time
        await take_action(client, sessions, CID, _act("resume"))
        team = campaign_workflow_id(CID, "team-promotion")
        await client.get_workflow_handle(team).result()
        await eventually(lambda: waits(renewal, WAIT_TIMER, "renewal_7_days"))
        await env.sleep(timedelta(days=24))
        await client.get_workflow_handle(renewal_workflow_id(CID, end)).result()
        await eventually(lambda: finished(renewal))
        return [
            await save(client, "customer_ops_paused_starts", customer_workflow_id(CID), suffix),
            await save(client, "renewal_ops_started_paused", renewal_workflow_id(CID, end), suffix),
            await save(client, "offer_ops_started_paused", team, suffix),
            await save(client, "offer_ops_started_paused_skipped", expansion, suffix),
        ]


if __name__ == "__main__":
    main(record)
