"""What every campaign child shares: telling the customer's entity workflow how it ended.

Children are started with parent-close policy ABANDON and the entity may have
continued-as-new since, so they report by signal to ``customer-{id}`` (its latest run),
not through the child-completion event.

The end names the run (``patches.CAMPAIGN_REPORTS_BY_RUN``): a campaign started again
under the same workflow id (a renewal for the same date, a dunning for the same invoice)
sends an end the entity has not seen, so it is heard each time.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from lifecycle.contracts.customer import EVENT_SIGNAL
    from lifecycle.contracts.events import CampaignFinished, EventPayload, customer_event
    from lifecycle.contracts.ids import customer_workflow_id
    from workflows import patches


async def tell_customer(
    customer_id: str, payload: EventPayload, *, suffix: str = "finished", run_id: str | None = None
) -> None:
    """Signal the entity an event whose id is this workflow's id plus ``suffix`` (sent once),
    plus ``run_id`` when given (each run of the same workflow id sends its own).

    By the signal's name: the entity's workflow module imports the campaigns, not the
    other way round."""
    await workflow.get_external_workflow_handle(customer_workflow_id(customer_id)).signal(
        EVENT_SIGNAL, customer_event(finished_event_id(workflow.info().workflow_id, suffix, run_id), payload)
    )


def finished_event_id(workflow_id: str, suffix: str = "finished", run_id: str | None = None) -> str:
    """``{workflow id}:{suffix}``, and ``:{run id}`` for a run-keyed report."""
    return f"{workflow_id}:{suffix}" + (f":{run_id}" if run_id else "")


def finished_workflow_id(event_id: str, run_id: str | None) -> str:
    """The child that sent the end ``event_id`` (the inverse of :func:`finished_event_id`)."""
    return event_id.removesuffix(f":finished:{run_id}" if run_id else ":finished")


async def report_finished(customer_id: str, campaign: str, outcome: str) -> None:
    """The campaign ended with ``outcome``; the entity decides what that means for the stage.
    The end names this run (its id in the payload and the event id)."""
    run_id = workflow.info().run_id if workflow.patched(patches.CAMPAIGN_REPORTS_BY_RUN) else None
    await tell_customer(
        customer_id, CampaignFinished(campaign=campaign, outcome=outcome, run_id=run_id), run_id=run_id
    )
