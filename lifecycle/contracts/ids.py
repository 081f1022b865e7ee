"""Workflow ids: every workflow of a customer lives under ``customer-{id}``.

Deterministic ids are how a second start is refused (a campaign, a usage email per
metric, period and threshold) and how the starter, the API and the campaigns find the
entity and its children.
"""

from datetime import datetime

USAGE_CAMPAIGN = "usage"


def customer_workflow_id(customer_id: str) -> str:
    """The customer's entity workflow."""
    return f"customer-{customer_id}"


def campaign_workflow_id(customer_id: str, campaign: str, *parts: str) -> str:
    """A campaign child of the entity: ``customer-{id}/{campaign}[/{part}...]``."""
    return "/".join([customer_workflow_id(customer_id), campaign, *parts])


def usage_workflow_id(customer_id: str, metric: str, period_start: datetime, threshold: int) -> str:
    """One usage email: ``customer-{id}/usage/{metric}/{YYYYMMDD}/{threshold}``."""
    return campaign_workflow_id(customer_id, USAGE_CAMPAIGN, metric, f"{period_start:%Y%m%d}", str(threshold))


def renewal_workflow_id(customer_id: str, period_end: datetime) -> str:
    """The reminders before one renewal: ``customer-{id}/renewal/{YYYYMMDD}`` (the period end)."""
    return campaign_workflow_id(customer_id, "renewal", f"{period_end:%Y%m%d}")


def webhook_workflow_id(customer_id: str) -> str:
    """The customer's webhook deliveries to the product, in order: ``customer-{id}/webhooks``."""
    return campaign_workflow_id(customer_id, "webhooks")
