"""What crosses Temporal for the product's webhooks: the event a workflow publishes, the
deliveries the per-customer delivery workflow works through, and its input.

Event types are the product's contract (the receiver subscribes to them by name): add,
never rename. No ``from __future__ import annotations`` here: the types are read at run time.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

STAGE_CHANGED = "customer.stage_changed"
ENTITLEMENTS_CHANGED = "customer.entitlements_changed"  # plan change, suspension, lift
USAGE_THRESHOLD_CROSSED = "usage.threshold_crossed"
SUBSCRIPTION_CHANGED = "subscription.changed"
DUNNING_STATE_CHANGED = "dunning.state_changed"
CAMPAIGN_FINISHED = "campaign.finished"

WEBHOOK_EVENT_TYPES = (
    STAGE_CHANGED,
    ENTITLEMENTS_CHANGED,
    USAGE_THRESHOLD_CROSSED,
    SUBSCRIPTION_CHANGED,
    DUNNING_STATE_CHANGED,
    CAMPAIGN_FINISHED,
)

# The delivery workflow (``customer-{id}/webhooks``) by name, and its one signal: deliveries
# to make, in the order given. By name: the activity that starts it cannot import workflows.
DELIVERY_WORKFLOW = "WebhookDeliveryWorkflow"
DELIVER_SIGNAL = "deliver"


@dataclass
class WebhookEvent:
    """One event for the product. ``event_id`` is deterministic (the publishing workflow's id
    and step): it is the ``webhook-id`` header, the receiver's de-duplication key."""

    event_id: str
    customer_id: str
    type: str
    occurred_at: datetime
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class DeliveryRef:
    """One row of the delivery log: an event to one endpoint."""

    delivery_id: int
    endpoint_id: str


@dataclass
class DeliveryBatch:
    deliveries: list[DeliveryRef] = field(default_factory=list)


@dataclass
class WebhookRetry:
    """How a delivery is retried: backoff from ``initial_seconds`` doubling up to
    ``maximum_seconds``, for ``window_seconds`` (3 days); then the endpoint is disabled."""

    initial_seconds: float = 5.0
    maximum_seconds: float = 3600.0
    window_seconds: float = 3 * 86400.0
    attempt_seconds: float = 30.0  # one attempt's start-to-close timeout (the HTTP timeout and a margin)


@dataclass
class WebhookDeliveryInput:
    customer_id: str
    retry: WebhookRetry = field(default_factory=WebhookRetry)
    # carried over continue-as-new: what is still to deliver, and recent delivery ids seen
    queued: list[DeliveryRef] = field(default_factory=list)
    seen: list[int] = field(default_factory=list)


@dataclass
class DeliveryResult:
    """``delivered``; else ``skipped`` says why nothing was sent (endpoint disabled or removed,
    already delivered)."""

    delivered: bool
    status_code: int | None = None
    skipped: str | None = None


@dataclass
class GiveUpInput:
    """A delivery failed for the whole retry window: it is marked failed, its endpoint disabled."""

    delivery: DeliveryRef
    error: str
