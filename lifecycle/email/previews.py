"""Tests and previews for marketers: a template sent to any address, marked as a test, or
rendered with sample data or a real customer's (``lifecycle templates preview|send-test``).
No caps, no suppressions, no timeline: nothing a customer sees."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

from sqlalchemy.orm import Session

from lifecycle.contracts.email import SendEmailInput, SendEmailResult
from lifecycle.contracts.policy import CampaignPolicy
from lifecycle.db import session_scope
from lifecycle.email.service import EmailRejected, EmailService, Ready
from lifecycle.email.templates import RenderedEmail, TemplateRenderError, TemplateSet
from lifecycle.email.templates.samples import sample_vars
from lifecycle.models import Customer


class EmailPreviews:
    def __init__(self, service: EmailService) -> None:
        self.service = service

    async def send_test(
        self,
        template: str,
        to: str,
        *,
        customer_id: str | None = None,
        policy: CampaignPolicy | None = None,
    ) -> SendEmailResult:
        """Send ``template`` to ``to`` through the configured provider, marked as a test.

        Renders with the customer's data when ``customer_id`` is given (plus the step's
        sample values), else with sample data. No caps, no suppressions, no timeline.
        """
        ready = await asyncio.to_thread(self._prepare, template, to, customer_id, policy)
        inp = SendEmailInput(customer_id=customer_id or "", template=template,
                             idempotency_key=f"test:{ready.message_id}")
        return await self.service.hand_over(inp, ready, dt.datetime.now(dt.UTC))

    def render_for(
        self, session: Session, template: str, *, customer_id: str | None,
        policy: CampaignPolicy | None,
    ) -> RenderedEmail:
        """Render a test or preview: sample data, or the customer's when ``customer_id``."""
        templates = self.service.templates_for(session, template)
        variables = self.sample_vars(templates, template, policy)
        if customer_id:
            customer = session.get(Customer, customer_id)
            if customer is None:
                raise EmailRejected(f"customer {customer_id!r} not found", "UnknownCustomer")
            variables.update(self.service.standard_vars(
                customer, category=variables["category"], campaign=variables["campaign"],
                step=variables["step"], is_test=True,
            ))
        return templates.render(template, variables)

    def sample_vars(
        self, templates: TemplateSet, template: str, policy: CampaignPolicy | None
    ) -> dict[str, Any]:
        """The template's sample data, with this sender's name, address and app URL."""
        return sample_vars(template, policy, declared=templates.declared(template),
                           settings_vars=self.service.sender_vars())

    def _prepare(
        self, template: str, to: str, customer_id: str | None, policy: CampaignPolicy | None
    ) -> Ready:
        with session_scope(self.service.sessions) as session:
            try:
                rendered = self.render_for(session, template, customer_id=customer_id,
                                           policy=policy)
            except TemplateRenderError as exc:
                raise EmailRejected(str(exc), "TemplateError") from None
            headers = {"X-Lifecycle-Test": "true"}
            if customer_id:
                headers.update(self.service.list_headers(customer_id))
            row = self.service.add_sending(
                session, rendered, key=f"test:{uuid.uuid4()}", to=to, headers=headers,
                subject="[TEST] " + rendered.subject, customer_id=customer_id, campaign="",
                step="", category="marketing", is_test=True,
            )
            return Ready(row.id, self.service.outgoing(row), None, rendered.template_version)
