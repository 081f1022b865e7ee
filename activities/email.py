"""The email activity: one method, ``send_email``, over :class:`lifecycle.email.service.EmailService`.

The worker builds :class:`EmailActivities` once with its session factory, provider and
settings. Errors become Temporal's vocabulary:

* a provider's "not now" (SendGrid 429/5xx, SMTP 4xx, connection refused) → a retryable
  ``ApplicationError`` (type ``ProviderUnavailable``; ``next_retry_delay`` from Retry-After),
  so Temporal retries with the backoff set at the call;
* anything retrying cannot fix (unknown customer, provider 4xx) →
  ``ApplicationError(non_retryable=True)`` with the provider's message;
* a template that does not render → a retryable ``TemplateError``: the step waits
  (visible in the Web UI as a failing activity) until a fixed version is published.

A retried attempt never sends twice: see ``lifecycle/email/service.py`` and docs/email.md.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from lifecycle.contracts.email import SendEmailInput, SendEmailResult
from lifecycle.contracts.ops import ResendEmailInput
from lifecycle.email.providers import EmailProvider
from lifecycle.email.service import EmailRejected, EmailRetryLater, EmailService
from lifecycle.settings import Settings

# ApplicationError types that are final. A template error is not among them: it is retried
# with backoff, so publishing a fixed version (`lifecycle templates publish`) lets it go out.
NON_RETRYABLE_TYPES = ["UnknownCustomer", "ProviderRejected", "EmailRejected"]


class EmailActivities:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: Settings,
        provider: EmailProvider,
        *,
        templates_dir: Path | None = None,
    ) -> None:
        self.service = EmailService(
            session_factory, provider, settings, templates_dir=templates_dir
        )

    @activity.defn
    async def send_email(self, inp: SendEmailInput) -> SendEmailResult:
        """Send, defer (cap, quiet hours), skip (suppressed, holdout) or report a duplicate."""
        return await _as_activity(self.service.send(inp))

    @activity.defn
    async def resend_email(self, inp: ResendEmailInput) -> SendEmailResult:
        """Send an uncertain or bounced email again, under the action's new key (ops)."""
        return await _as_activity(self.service.resend(inp))


async def _as_activity(sending: Awaitable[SendEmailResult]) -> SendEmailResult:
    """The service's refusals as the activity's failures: a rejection is final when its kind
    says so; "try later" is retried after the provider's Retry-After."""
    try:
        return await sending
    except EmailRejected as exc:
        final = exc.kind in NON_RETRYABLE_TYPES
        raise ApplicationError(str(exc), type=exc.kind, non_retryable=final) from None
    except EmailRetryLater as exc:
        delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
        raise ApplicationError(str(exc), type="ProviderUnavailable", next_retry_delay=delay) from None
