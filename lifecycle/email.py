"""Email, in one import: rendering, providers and unsubscribe links.

The channel lives in clearly named modules; this module gathers what other code needs:

* :mod:`lifecycle.email_templates` — sandboxed Jinja2 templates, checks, published versions
* :mod:`lifecycle.email_providers` — outbox, SMTP, SendGrid; :func:`make_provider`
* :mod:`lifecycle.email_rules` — A/B assignment, frequency cap, quiet hours (pure)
* :mod:`lifecycle.email_service` — one send: decide, record, render, hand over, record
* :mod:`lifecycle.email_results` — campaign results per variant
* :mod:`lifecycle.unsubscribe` — signed unsubscribe tokens
"""

from __future__ import annotations

from lifecycle.email_providers import (
    EmailProvider,
    OutboxProvider,
    OutgoingEmail,
    ProviderError,
    SendGridProvider,
    SmtpProvider,
    make_provider,
)
from lifecycle.email_templates import LAYOUT, RenderedEmail, TemplateSet
from lifecycle.email_templates import TemplateRenderError as TemplateError
from lifecycle.settings import Settings
from lifecycle.unsubscribe import unsubscribe_url as _signed_url

__all__ = [
    "LAYOUT",
    "EmailProvider",
    "OutboxProvider",
    "OutgoingEmail",
    "ProviderError",
    "RenderedEmail",
    "SendGridProvider",
    "SmtpProvider",
    "TemplateError",
    "TemplateSet",
    "make_provider",
    "unsubscribe_url",
]


def unsubscribe_url(settings: Settings, customer_id: str) -> str:
    """The signed one-click unsubscribe link for a customer."""
    return _signed_url(settings.public_url, settings.unsubscribe_secret, customer_id)
