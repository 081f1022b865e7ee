"""What every campaign child shares: telling the customer's entity workflow how it ended.

Children are started with parent-close policy ABANDON and the entity may have
continued-as-new since, so they report by signal to ``customer-{id}`` (its latest run),
not through the child-completion event.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from lifecycle.contracts.customer import EVENT_SIGNAL
    from lifecycle.contracts.events import CampaignFinished, EventPayload, customer_event
    from lifecycle.contracts.ids import customer_workflow_id


async def tell_customer(customer_id: str, payload: EventPayload, *, suffix: str = "finished") -> None:
    """Signal the entity an event whose id is this workflow's id plus ``suffix`` (sent once).

    By the signal's name: the entity's workflow module imports the campaigns, not the
    other way round."""
    await workflow.get_external_workflow_handle(customer_workflow_id(customer_id)).signal(
        EVENT_SIGNAL, customer_event(f"{workflow.info().workflow_id}:{suffix}", payload)
    )


async def report_finished(customer_id: str, campaign: str, outcome: str) -> None:
    """The campaign ended with ``outcome``; the entity decides what that means for the stage."""
    await tell_customer(customer_id, CampaignFinished(campaign=campaign, outcome=outcome))
