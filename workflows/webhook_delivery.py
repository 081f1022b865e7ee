"""WebhookDeliveryWorkflow (``customer-{id}/webhooks``): the customer's events to the product, in order.

Fed by signal-with-start from the ``publish_webhook`` activity (and ``lifecycle webhooks
redeliver``), it keeps one lane per endpoint and delivers each lane's deliveries one at a
time, in the order they arrived: a receiver that is down holds back that endpoint's later
events for this customer (never reorders them) and no other endpoint's. Each delivery is
one activity retried with backoff for the retry window (3 days); past it the delivery is
failed and the endpoint disabled, and the rest of its lane is skipped.

It completes when every lane is empty (the next event starts a new run) and continues as
new when Temporal suggests it, carrying what is queued.
"""

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.webhooks import WebhookActivities
    from lifecycle.contracts.webhooks import (
        DELIVER_SIGNAL,
        DELIVERY_WORKFLOW,
        DeliveryBatch,
        DeliveryRef,
        GiveUpInput,
        WebhookDeliveryInput,
    )
    from workflows.options import STORE_RETRY, STORE_TIMEOUT

SEEN_DELIVERIES_KEPT = 1000


@workflow.defn(name=DELIVERY_WORKFLOW)
class WebhookDeliveryWorkflow:
    @workflow.init
    def __init__(self, input: WebhookDeliveryInput) -> None:
        self._input = input
        self._lanes: dict[str, list[DeliveryRef]] = {}
        self._running: set[str] = set()
        self._seen: list[int] = list(input.seen)
        self._seen_set = set(self._seen)
        self._draining = False
        for ref in input.queued:
            self._lanes.setdefault(ref.endpoint_id, []).append(ref)

    @workflow.signal(name=DELIVER_SIGNAL)
    def deliver(self, batch: DeliveryBatch) -> None:
        """Deliveries to make, after those already queued; a delivery id seen before is ignored."""
        for ref in batch.deliveries:
            if ref.delivery_id in self._seen_set:
                continue
            self._seen_set.add(ref.delivery_id)
            self._seen.append(ref.delivery_id)
            self._lanes.setdefault(ref.endpoint_id, []).append(ref)
        if len(self._seen) > SEEN_DELIVERIES_KEPT:
            dropped, self._seen = self._seen[:-SEEN_DELIVERIES_KEPT], self._seen[-SEEN_DELIVERIES_KEPT:]
            self._seen_set.difference_update(dropped)

    @workflow.query
    def queued(self) -> list[DeliveryRef]:
        """What is still to deliver, lane by lane (the head of each lane is under way)."""
        return [ref for lane in self._lanes.values() for ref in lane]

    @workflow.run
    async def run(self, input: WebhookDeliveryInput) -> None:
        while True:
            await workflow.wait_condition(
                lambda: bool(self._idle_lanes()) or self._done() or self._continue_suggested()
            )
            if self._continue_suggested():
                self._draining = True  # each lane stops after the delivery under way
                await workflow.wait_condition(lambda: not self._running)
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    WebhookDeliveryInput(
                        customer_id=input.customer_id, retry=input.retry,
                        queued=self.queued(), seen=self._seen,
                    )
                )
            for endpoint_id in self._idle_lanes():
                self._running.add(endpoint_id)
                asyncio.create_task(self._lane(endpoint_id))
            if self._done():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._done():
                    return

    def _idle_lanes(self) -> list[str]:
        return [e for e, lane in self._lanes.items() if lane and e not in self._running]

    def _done(self) -> bool:
        return not self._running and not any(self._lanes.values())

    def _continue_suggested(self) -> bool:
        return workflow.info().is_continue_as_new_suggested()

    async def _lane(self, endpoint_id: str) -> None:
        lane = self._lanes[endpoint_id]
        retry = self._input.retry
        try:
            while lane and not self._draining:
                ref = lane[0]
                try:
                    await workflow.execute_activity_method(
                        WebhookActivities.deliver_webhook,
                        ref,
                        start_to_close_timeout=timedelta(seconds=retry.attempt_seconds),
                        schedule_to_close_timeout=timedelta(seconds=retry.window_seconds),
                        retry_policy=RetryPolicy(
                            initial_interval=timedelta(seconds=retry.initial_seconds),
                            backoff_coefficient=2.0,
                            maximum_interval=timedelta(seconds=retry.maximum_seconds),
                        ),
                    )
                except ActivityError as err:
                    cause = err.cause
                    while isinstance(cause, FailureError) and cause.cause is not None and not cause.message:
                        cause = cause.cause
                    reason = cause.message if isinstance(cause, FailureError) else str(err)
                    await workflow.execute_activity_method(
                        WebhookActivities.give_up_webhook,
                        GiveUpInput(delivery=ref, error=reason or "retry window passed"),
                        start_to_close_timeout=STORE_TIMEOUT,
                        retry_policy=STORE_RETRY,
                    )
                lane.pop(0)
        finally:
            self._running.discard(endpoint_id)
            if not lane:
                self._lanes.pop(endpoint_id, None)
