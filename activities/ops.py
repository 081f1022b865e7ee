"""The ops activity: the audit trail of an action the customer's entity took."""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from lifecycle import audit
from lifecycle.contracts.ops import AuditEntryInput


class OpsActivities:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._sessions = session_factory

    @activity.defn(name="record_ops_action")
    async def record_action(self, entry: AuditEntryInput) -> bool:
        """Write the audit row and the timeline entry once (by action id); False on a retry
        that finds them written."""
        return await asyncio.to_thread(audit.record, self._sessions, entry)
