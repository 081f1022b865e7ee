"""The search attributes ops filter on in the Web UI (all Keyword): who, on which plan, at
which stage, and a dunning's state. Workflows upsert them; the starter sets them on start; ``lifecycle.temporal``
registers them on a cluster."""

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
PLAN = SearchAttributeKey.for_keyword("Plan")
LIFECYCLE_STAGE = SearchAttributeKey.for_keyword("LifecycleStage")
# the dunning workflow's stage (warning, grace, suspended, recovered, ...): "every customer in grace"
DUNNING_STATE = SearchAttributeKey.for_keyword("DunningState")
SEARCH_ATTRIBUTES = (CUSTOMER_ID, PLAN, LIFECYCLE_STAGE, DUNNING_STATE)


def customer_search_attributes(customer_id: str, plan: str, stage: str) -> TypedSearchAttributes:
    """The attributes of an entity or campaign workflow."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(CUSTOMER_ID, customer_id),
            SearchAttributePair(PLAN, plan),
            SearchAttributePair(LIFECYCLE_STAGE, stage),
        ]
    )
