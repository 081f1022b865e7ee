"""Webhook activities: publish an event for the product, deliver it to one endpoint, give up.

``publish_webhook`` records the event and one delivery per subscribed endpoint in one
transaction, commits, then signal-with-starts the customer's delivery workflow
(``customer-{id}/webhooks``): a retry after a crash records nothing twice and signals the
same deliveries again (the workflow ignores ids it has seen). ``deliver_webhook`` reads
the delivery, resolves and checks its host (never an address inside the network:
``lifecycle.webhooks.addresses``), posts it to the first checked address that takes the
connection (no transaction is open meanwhile) and records the answer; a non-2xx, a network error or a refused address raises,
and the workflow's retry policy backs off for up to 3 days.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from lifecycle.contracts.webhooks import DeliveryRef, DeliveryResult, GiveUpInput, WebhookEvent
from lifecycle.db import session_scope
from lifecycle.settings import Settings
from lifecycle.webhooks import deliveries
from lifecycle.webhooks.addresses import Resolver, system_resolve, without_userinfo
from lifecycle.webhooks.sending import Answer, delivery_client, hand_over, post, retry_of

log = logging.getLogger("lifecycle.activities.webhooks")

WEBHOOK_REJECTED = "WebhookRejected"  # the endpoint answered non-2xx or could not be reached: retried


class WebhookActivities:
    def __init__(
        self, session_factory: sessionmaker[Session], settings: Settings, *, resolve: Resolver = system_resolve
    ) -> None:
        self._sessions = session_factory
        self._settings = settings
        self._resolve = resolve  # the name service each delivery asks (a test's own, or the system's)

    def all(self) -> list[Callable[..., Any]]:
        """The activities to register on the worker."""
        return [self.publish_webhook, self.deliver_webhook, self.give_up_webhook]

    @activity.defn(name="publish_webhook")
    async def publish_webhook(self, event: WebhookEvent) -> int:
        """Record ``event`` for every endpoint that takes it and hand the deliveries over;
        returns how many (0: no endpoint takes this type, nothing stored)."""
        refs = await asyncio.to_thread(self._record, event)
        if refs:
            await hand_over(
                activity.client(), activity.info().task_queue, event.customer_id, refs,
                retry_of(self._settings),
            )
        return len(refs)

    def _record(self, event: WebhookEvent) -> list[DeliveryRef]:
        with session_scope(self._sessions) as session:
            return deliveries.record_event(session, event)

    @activity.defn(name="deliver_webhook")
    async def deliver_webhook(self, ref: DeliveryRef) -> DeliveryResult:
        """One attempt at one delivery, recorded in the log; raises (retryable) unless 2xx."""
        prepared = await asyncio.to_thread(self._prepare, ref.delivery_id)
        if isinstance(prepared, str):
            return DeliveryResult(delivered=False, skipped=prepared)
        async with delivery_client() as http:
            answer = await post(http, prepared, self._settings.webhook_timeout_seconds,
                                allow_private=self._settings.webhook_allow_private, resolve=self._resolve)
        await asyncio.to_thread(self._record_attempt, ref.delivery_id, answer, activity.info().attempt)
        if not answer.ok:
            raise ApplicationError(
                f"{without_userinfo(prepared.url)}: {answer.error}" + (f" {answer.head!r}" if answer.head else ""),
                type=WEBHOOK_REJECTED,
            )
        return DeliveryResult(delivered=True, status_code=answer.status_code)

    def _prepare(self, delivery_id: int) -> deliveries.Attempt | str:
        with session_scope(self._sessions) as session:
            return deliveries.prepare(session, delivery_id)

    def _record_attempt(self, delivery_id: int, answer: Answer, attempt: int) -> None:
        with session_scope(self._sessions) as session:
            deliveries.record_attempt(
                session, delivery_id, attempt=attempt, status_code=answer.status_code,
                latency_ms=answer.latency_ms, response_head=answer.head, error=answer.error,
            )

    @activity.defn(name="give_up_webhook")
    async def give_up_webhook(self, input: GiveUpInput) -> bool:
        """The delivery failed for the whole window: failed, and its endpoint disabled."""
        return await asyncio.to_thread(self._give_up, input)

    def _give_up(self, input: GiveUpInput) -> bool:
        with session_scope(self._sessions) as session:
            endpoint = deliveries.give_up(
                session, input.delivery.delivery_id, input.error, self._settings.webhook_retry_window_seconds
            )
            if endpoint is not None:
                log.warning("webhook endpoint %s disabled: %s", endpoint.id, endpoint.disabled_reason)
            return endpoint is not None
