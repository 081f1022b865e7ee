"""Sending events to a customer's workflow: the one way the starter talks to Temporal.

``signal_customer`` signals ``customer-{id}``; given ``start`` it uses
signal-with-start, so an event for a customer without a running workflow starts one
(a repeated signup, or a subscription made in the Stripe dashboard). Every event
carries our own id, and the workflow ignores ids it has seen.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from lifecycle.contracts.customer import EVENT_SIGNAL, CustomerEvent, CustomerWorkflowInput
from lifecycle.contracts.ids import customer_workflow_id
from lifecycle.contracts.policy import load_policy
from lifecycle.contracts.search_attributes import customer_search_attributes
from lifecycle.contracts.stages import TRIALING
from lifecycle.contracts.tiers import tiers_from_catalog
from lifecycle.settings import Settings
from workflows.customer import CustomerWorkflow

RPC_TIMEOUT = timedelta(seconds=5)


class TemporalUnavailable(RuntimeError):
    """Temporal could not be reached or refused the call; nothing was sent."""


def start_input(settings: Settings, customer_id: str, plan: str) -> CustomerWorkflowInput:
    """A new entity's input: the campaign policy and the tiers as they are now (later edits
    affect new workflows only)."""
    policy = load_policy(settings.policy_path, day_seconds=settings.day_seconds)
    return CustomerWorkflowInput(customer_id=customer_id, plan=plan, policy=policy, tiers=tiers_from_catalog())


async def signal_customer(
    client: Client,
    customer_id: str,
    event: CustomerEvent,
    start: CustomerWorkflowInput | None = None,
    *,
    task_queue: str | None = None,
    rpc_timeout: timedelta = RPC_TIMEOUT,
) -> None:
    """Signal ``customer-{id}``; with ``start`` (and ``task_queue``), signal-with-start."""
    workflow_id = customer_workflow_id(customer_id)
    if start is not None and not task_queue:
        raise ValueError("signal-with-start needs the task queue (settings.task_queue)")
    try:
        if start is None:
            await client.get_workflow_handle(workflow_id).signal(
                CustomerWorkflow.event, event, rpc_timeout=rpc_timeout
            )
            return
        await client.start_workflow(
            CustomerWorkflow.run,
            start,
            id=workflow_id,
            task_queue=task_queue,  # type: ignore[arg-type]  # checked above: set with start
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=EVENT_SIGNAL,
            start_signal_args=[event],
            search_attributes=customer_search_attributes(
                customer_id, start.plan, start.state.stage if start.state else TRIALING
            ),
            rpc_timeout=rpc_timeout,
        )
    except RPCError as exc:
        raise TemporalUnavailable(f"Temporal refused or could not take the event: {exc.message}") from exc
    except RuntimeError as exc:  # client could not connect (lazy client)
        raise TemporalUnavailable(f"Temporal is unreachable: {exc}") from exc
