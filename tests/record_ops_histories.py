"""Record the histories of the ops controls (tests/histories/*ops*.json): an entity and its
onboarding paused across a step's time, resumed, a step skipped; an entity whose
onboarding ops cancelled.

    .venv/bin/python -m tests.record_ops_histories vN   # a new suffix
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from lifecycle.contracts.customer import CustomerEvent
from lifecycle.contracts.ids import campaign_workflow_id, customer_workflow_id
from starter.ops.actions import ActionRequest, take_action
from starter.ops.why import why_waiting
from starter.signals.send import signal_customer, start_input
from tests.record_histories import main, recording, save
from tests.support.helpers import add_customer, eventually


def _act(action: str, **kw: str) -> ActionRequest:
    return ActionRequest(action=action, reason="recorded for the replay tests", actor="recorder", **kw)


async def record(suffix: str = "v1") -> list[Path]:
    async with recording("record") as rec:
        client, settings, sessions, env = rec.client, rec.settings, rec.sessions, rec.env

        async def onboarding_on(cid: str, step: str) -> bool:
            try:
                why = await why_waiting(client, cid)
            except Exception:  # noqa: BLE001  (not started yet)
                return False
            return any(c.campaign == "onboarding" and c.step == step for c in why.campaigns)

        for cid in ("rec-o1", "rec-o2"):
            add_customer(sessions, cid)
            await signal_customer(client, cid, CustomerEvent(f"signup:{cid}", "signup"),
                                  start=start_input(settings, cid, "starter"), task_queue=settings.task_queue)
            await eventually(lambda cid=cid: onboarding_on(cid, "tip_first_project"))
        # rec-o2: onboarding cancelled by ops
        await take_action(client, sessions, "rec-o2", _act("cancel-campaign", campaign="onboarding"))
        # rec-o1: paused across tip_first_project's time, resumed (it goes out), tip_invite_team skipped
        await take_action(client, sessions, "rec-o1", _act("pause"))
        await env.sleep(timedelta(days=2))
        await take_action(client, sessions, "rec-o1", _act("resume"))
        await eventually(lambda: onboarding_on("rec-o1", "tip_invite_team"))
        await take_action(client, sessions, "rec-o1", _act("skip-step", campaign="onboarding"))
        await env.sleep(timedelta(days=6))
        await client.get_workflow_handle(campaign_workflow_id("rec-o1", "onboarding")).result()
        return [
            await save(client, "customer_ops_paused_skipped", customer_workflow_id("rec-o1"), suffix),
            await save(client, "onboarding_ops_paused_skipped", campaign_workflow_id("rec-o1", "onboarding"), suffix),
            await save(client, "customer_ops_cancelled", customer_workflow_id("rec-o2"), suffix),
        ]


if __name__ == "__main__":
    main(record)
