"""The search attributes ops filter on in the Web UI (all Keyword): who, on which plan, at
which stage. Workflows upsert them; the starter sets them on start; ``lifecycle.temporal``
registers them on a cluster."""

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
PLAN = SearchAttributeKey.for_keyword("Plan")
LIFECYCLE_STAGE = SearchAttributeKey.for_keyword("LifecycleStage")
SEARCH_ATTRIBUTES = (CUSTOMER_ID, PLAN, LIFECYCLE_STAGE)


def customer_search_attributes(customer_id: str, plan: str, stage: str) -> TypedSearchAttributes:
    """The attributes of an entity or campaign workflow."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(CUSTOMER_ID, customer_id),
            SearchAttributePair(PLAN, plan),
            SearchAttributePair(LIFECYCLE_STAGE, stage),
        ]
    )
