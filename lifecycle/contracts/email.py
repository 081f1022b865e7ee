"""What crosses Temporal for email: the email activity's input and result.

All fields after the first few have defaults so older callers and histories keep working.
"""


from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lifecycle.contracts.policy import EmailVariant


@dataclass
class SendEmailInput:
    """Ask the email activity to send one email (or to decide that it must wait or skip).

    Fields after ``context`` were added by the email channel; all have defaults so older
    callers and histories keep working.
    """

    customer_id: str
    template: str
    idempotency_key: str  # unique per workflow step
    campaign: str = ""
    step: str = ""
    category: str = "marketing"
    context: dict[str, Any] = field(default_factory=dict)  # facts the template may use, no PII
    # The decision's clock: the workflow passes workflow.now() so that caps and quiet hours
    # follow workflow time (also under the time-skipping test server); None: wall clock.
    now: datetime | None = None
    # A/B test of this step (from its EmailStep); empty: just `template`.
    variants: list[EmailVariant] = field(default_factory=list)
    holdout: float = 0.0
    # The workflow already decided not to send (e.g. "goal met: created_first_project"):
    # record that decision in the customer's timeline and send nothing.
    skip_reason: str | None = None
    # False: never answer "deferred" (send now or skip); for callers that cannot wait.
    allow_defer: bool = True


# SendEmailResult.status values
EMAIL_SENT = "sent"  # handed to the provider now
EMAIL_DUPLICATE = "duplicate"  # this idempotency key was sent before: nothing sent again
EMAIL_SKIPPED = "skipped"  # not sent and never will be for this step (reason says why)
EMAIL_DEFERRED = "deferred"  # not now: ask again at not_before (cap, quiet hours)
EMAIL_HOLDOUT = "holdout"  # the customer is in the step's A/B holdout group: no email
EMAIL_UNCERTAIN = "uncertain"  # an earlier attempt died mid-send: not resent (see docs/email.md)


@dataclass
class SendEmailResult:
    status: str  # sent | duplicate | skipped | deferred | holdout | uncertain
    message_id: int | None = None
    reason: str | None = None
    not_before: datetime | None = None  # set when deferred (UTC)
    variant: str | None = None
    template_version: str | None = None
