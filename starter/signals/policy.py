"""Publishing the policy and the catalog, and telling every running entity of the new version.

``publish_current`` validates the deployed files (``templates/campaigns.toml``, the catalog)
and stores them as a version; ``announce`` lists the running ``CustomerWorkflow``s through
Temporal visibility and signals each (``policy_version``), a batch at a time. An entity
that misses the signal (started meanwhile, or down) still checks the latest version at
its next continue-as-new.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from lifecycle.contracts.policy_versions import POLICY_VERSION_SIGNAL, PolicyVersionNotice
from lifecycle.db import session_scope
from lifecycle.policy.versions import Published, current_files, publish
from lifecycle.settings import Settings

log = logging.getLogger(__name__)

RUNNING_ENTITIES = 'WorkflowType = "CustomerWorkflow" AND ExecutionStatus = "Running"'
BATCH = 50  # signals in flight at once


@dataclass
class Announced:
    signalled: int = 0
    gone: int = 0  # finished between the listing and the signal
    errors: list[str] = field(default_factory=list)


def publish_current(
    settings: Settings, sessions: sessionmaker[Session], *, who: str, reinstate: bool = True
) -> Published:
    """Validate the deployed policy and catalog (PolicyError) and store them as a version.

    ``reinstate=False`` (the worker at start): content published before is left as it is,
    so a worker deployed with older files never takes back a version published since.
    """
    policy, tiers = current_files(settings)
    with session_scope(sessions) as session:
        return publish(session, policy, tiers, who=who, reinstate=reinstate)


async def _signal(client: Client, workflow_id: str, notice: PolicyVersionNotice, out: Announced) -> None:
    try:
        await client.get_workflow_handle(workflow_id).signal(POLICY_VERSION_SIGNAL, notice)
        out.signalled += 1
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            out.gone += 1
        else:
            out.errors.append(f"{workflow_id}: {exc.message}")


async def running_entities(client: Client) -> AsyncIterator[str]:
    """The workflow id of every running CustomerWorkflow (Temporal visibility)."""
    async for wf in client.list_workflows(RUNNING_ENTITIES, page_size=500):
        yield wf.id


async def _ids(ids: Iterable[str]) -> AsyncIterator[str]:
    for wid in ids:
        yield wid


async def announce(
    client: Client, version_id: int, *, batch: int = BATCH, workflow_ids: Iterable[str] | None = None
) -> Announced:
    """Signal every running entity (or those of ``workflow_ids``) that ``version_id`` is the
    latest, ``batch`` at a time."""
    out, notice, pending = Announced(), PolicyVersionNotice(version_id), []
    targets = running_entities(client) if workflow_ids is None else _ids(workflow_ids)
    async for wid in targets:
        pending.append(wid)
        if len(pending) >= batch:
            await asyncio.gather(*(_signal(client, wid, notice, out) for wid in pending))
            pending = []
    await asyncio.gather(*(_signal(client, wid, notice, out) for wid in pending))
    log.info("policy version %s: %d entities signalled, %d gone, %d errors",
             version_id, out.signalled, out.gone, len(out.errors))
    return out
