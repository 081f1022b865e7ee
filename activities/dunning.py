"""Database activities for dunning: what it begins with, and its state saved at every change.

Every method is idempotent: the snapshot is a full write, so a retried attempt (or one
replayed after a worker crash) leaves the same rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from lifecycle.billing.dunning import open_invoices, save_snapshot
from lifecycle.contracts.dunning import (
    DunningInput,
    DunningInvoice,
    DunningSetup,
    DunningSnapshot,
    OpenInvoicesInput,
)
from lifecycle.contracts.policy import load_policy
from lifecycle.db import session_scope
from lifecycle.models import Invoice
from lifecycle.settings import Settings


class DunningActivities:
    def __init__(self, session_factory: sessionmaker[Session], settings: Settings) -> None:
        self._sessions = session_factory
        self._settings = settings

    def _setup(self, inp: DunningInput) -> DunningSetup:
        s = self._settings
        policy = load_policy(s.policy_path, day_seconds=s.day_seconds)
        with session_scope(self._sessions) as session:
            status = session.scalar(
                select(Invoice.status).where(Invoice.stripe_invoice_id == inp.first_invoice.invoice_id)
            )
        return DunningSetup(
            policy=policy.dunning,
            retry_mode=s.dunning_retry_mode,
            day_seconds=policy.day_seconds,
            first_invoice_status=status,
        )

    @activity.defn(name="dunning_begin")
    async def begin(self, inp: DunningInput) -> DunningSetup:
        """The policy and retry mode as they are now (a change applies to dunnings begun
        after it), and what the mirror knows of the first invoice."""
        return await asyncio.to_thread(self._setup, inp)

    def _save(self, snap: DunningSnapshot) -> None:
        with session_scope(self._sessions) as session:
            save_snapshot(session, snap)

    @activity.defn(name="dunning_save")
    async def save(self, snap: DunningSnapshot) -> None:
        """The run's state, its suspension and its invoices' cases."""
        await asyncio.to_thread(self._save, snap)

    def _open(self, inp: OpenInvoicesInput) -> list[DunningInvoice]:
        with session_scope(self._sessions) as session:
            return open_invoices(session, inp.customer_id)

    @activity.defn(name="dunning_open_invoices")
    async def open_invoices(self, inp: OpenInvoicesInput) -> list[DunningInvoice]:
        """The customer's open invoices (a subscription turned past_due without a failure event)."""
        return await asyncio.to_thread(self._open, inp)

    def all(self) -> list[Callable[..., Any]]:
        return [self.begin, self.save, self.open_invoices]
