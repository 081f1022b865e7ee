"""What crosses Temporal for the customer's timeline: the store activity's input."""


from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class RecordEventInput:
    """A timeline entry; ``kind == 'stage_changed'`` also updates the customer row."""

    customer_id: str
    event_key: str  # unique per workflow step: a retry records nothing twice
    kind: str
    occurred_at: datetime
    from_stage: str | None = None
    to_stage: str | None = None
    campaign: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
