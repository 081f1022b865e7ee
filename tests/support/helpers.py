"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lifecycle.models import Customer, EmailMessage, LifecycleEvent

T = TypeVar("T")


async def eventually(
    probe: Callable[[], T | Awaitable[T]], *, timeout: float = 15.0, interval: float = 0.05
) -> T:
    """Poll ``probe`` (sync or async) until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        result = probe()
        if asyncio.iscoroutine(result):
            result = await result
        last = result  # type: ignore[assignment]
        if last:
            return last  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")
        await asyncio.sleep(interval)


def add_customer(
    sessions: sessionmaker[Session],
    customer_id: str,
    *,
    email: str | None = None,
    name: str = "Ada Lovelace",
    plan: str = "starter",
    timezone: str = "UTC",
) -> None:
    with sessions() as s:
        s.add(
            Customer(
                id=customer_id,
                email=email or f"{customer_id}@example.test",
                name=name,
                company="Analytical Engines",
                timezone=timezone,
                plan_code=plan,
            )
        )
        s.commit()


def emails(sessions: sessionmaker[Session], customer_id: str) -> list[EmailMessage]:
    with sessions() as s:
        return list(
            s.scalars(
                select(EmailMessage).where(EmailMessage.customer_id == customer_id).order_by(EmailMessage.id)
            )
        )


def timeline(sessions: sessionmaker[Session], customer_id: str) -> list[LifecycleEvent]:
    with sessions() as s:
        return list(
            s.scalars(
                select(LifecycleEvent)
                .where(LifecycleEvent.customer_id == customer_id)
                .order_by(LifecycleEvent.id)
            )
        )


def customer_row(sessions: sessionmaker[Session], customer_id: str) -> Customer | None:
    with sessions() as s:
        return s.get(Customer, customer_id)
