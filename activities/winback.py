"""Retention activities: the records of cancellation requests, save offers and
reactivations (lifecycle.retention.records), each also on the customer's timeline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from lifecycle.contracts.winback import (
    AccessPauseRecord,
    CancellationRecord,
    ReactivationRecord,
    SaveOfferRecord,
)
from lifecycle.db import session_scope
from lifecycle.retention import records
from lifecycle.retention.pauses import record_access_pause


class WinbackActivities:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._sessions = session_factory

    def _write(self, fn: Callable[[Session, Any], None], rec: Any) -> None:
        with session_scope(self._sessions) as session:
            fn(session, rec)

    @activity.defn(name="retention_record_cancellation")
    async def record_cancellation(self, rec: CancellationRecord) -> None:
        """A cancellation request's outcome (offered, saved, cancel_scheduled, canceled)."""
        await asyncio.to_thread(self._write, records.record_cancellation, rec)

    @activity.defn(name="retention_record_save_offer")
    async def record_save_offer(self, rec: SaveOfferRecord) -> None:
        """A save offer made, or its answer (accepted, declined, expired)."""
        await asyncio.to_thread(self._write, records.record_save_offer, rec)

    @activity.defn(name="retention_record_reactivation")
    async def record_reactivation(self, rec: ReactivationRecord) -> None:
        """A customer won back (once per step key)."""
        await asyncio.to_thread(self._write, records.record_reactivation, rec)

    @activity.defn(name="retention_record_access_pause")
    async def record_access_pause(self, rec: AccessPauseRecord) -> None:
        """A pause's access began or ended (the usage check and the entitlements follow it)."""
        await asyncio.to_thread(self._write, record_access_pause, rec)

    def all(self) -> list[Callable[..., Any]]:
        return [self.record_cancellation, self.record_save_offer, self.record_reactivation, self.record_access_pause]
