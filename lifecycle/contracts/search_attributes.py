"""The search attributes ops filter on in the Web UI and ``lifecycle customers list``: who,
on which plan, at which stage (Keyword, on the entity and set on its children at start),
and what a customer's campaigns are doing. Workflows upsert them; the starter sets them on
start; ``lifecycle.temporal`` registers them on a cluster."""

from datetime import UTC, datetime

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
PLAN = SearchAttributeKey.for_keyword("Plan")
LIFECYCLE_STAGE = SearchAttributeKey.for_keyword("LifecycleStage")
# the dunning campaign's state on the entity (set by the payment-recovery campaign)
DUNNING_STATE = SearchAttributeKey.for_keyword("DunningState")
# on the entity: the campaigns running now
CAMPAIGNS = SearchAttributeKey.for_keyword_list("Campaigns")
# on each controlled campaign child: its name, what it waits for, when its next step is due
CAMPAIGN = SearchAttributeKey.for_keyword("Campaign")
WAITING_FOR = SearchAttributeKey.for_keyword("WaitingFor")
# NextStepAt is on the entity too: the earliest next step of all its campaigns
NEXT_STEP_AT = SearchAttributeKey.for_datetime("NextStepAt")
# on the entity: what its campaigns wait for, each kind and each ``campaign:kind``
# (``timer``, ``onboarding:timer``, ``renewal:paused``): lifecycle.contracts.ops.entity_waits
WAITS = SearchAttributeKey.for_keyword_list("Waits")
SEARCH_ATTRIBUTES = (
    CUSTOMER_ID, PLAN, LIFECYCLE_STAGE, DUNNING_STATE, CAMPAIGNS, CAMPAIGN, WAITING_FOR, NEXT_STEP_AT, WAITS,
)
# The entity's NextStepAt when none of its campaigns waits on a time: "never", rather than
# unset (the time-skipping test server keeps an unset Datetime as a null that the client
# cannot decode, so describing the entity would fail). Shown as no next step.
NO_NEXT_STEP = datetime(9999, 12, 31, tzinfo=UTC)


def customer_search_attributes(customer_id: str, plan: str, stage: str) -> TypedSearchAttributes:
    """The attributes of an entity or campaign workflow."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(CUSTOMER_ID, customer_id),
            SearchAttributePair(PLAN, plan),
            SearchAttributePair(LIFECYCLE_STAGE, stage),
        ]
    )
