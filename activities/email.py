"""The email activity: render with the customer's data from the database, hand to the provider.

No address or name travels through workflow history: the activity looks them up.
Each send is recorded under the step's idempotency key before it goes to the provider,
so a retried activity never sends twice.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from lifecycle import catalog
from lifecycle.email import (
    EmailProvider,
    OutgoingEmail,
    TemplateError,
    TemplateRenderer,
    unsubscribe_url,
)
from lifecycle.messages import SendEmailInput, SendEmailResult
from lifecycle.models import Customer, EmailMessage, LifecycleEvent
from lifecycle.settings import Settings


def customer_context(customer: Customer, settings: Settings) -> dict[str, Any]:
    """What every template may use about the customer (looked up, never from history)."""
    plan = catalog.get_plan(customer.plan_code)
    first_name = (customer.name or "").split(" ")[0] or "there"
    return {
        "customer": {
            "id": customer.id,
            "name": customer.name or "",
            "first_name": first_name,
            "company": customer.company or "",
            "email": customer.email,
            "stage": customer.stage,
        },
        "plan": {"code": plan.code, "name": plan.name, "price": plan.monthly_price},
        "app_url": settings.public_url,
        "sender_postal_address": settings.email_postal_address,
        "unsubscribe_url": unsubscribe_url(settings, customer.id),
    }


class EmailActivities:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: Settings,
        provider: EmailProvider,
        renderer: TemplateRenderer | None = None,
    ) -> None:
        self._sessions = session_factory
        self._settings = settings
        self._provider = provider
        self._renderer = renderer or TemplateRenderer(settings.templates_dir)

    @activity.defn(name="send_email")
    async def send_email(self, input: SendEmailInput) -> SendEmailResult:
        return await asyncio.to_thread(self._send, input)

    def _send(self, input: SendEmailInput) -> SendEmailResult:
        with self._sessions() as session:
            existing = session.scalar(
                select(EmailMessage).where(EmailMessage.idempotency_key == input.idempotency_key)
            )
            if existing is not None:
                return SendEmailResult("duplicate", existing.id, "already sent for this step")
            customer = session.get(Customer, input.customer_id)
            if customer is None:
                raise ApplicationError(
                    f"unknown customer {input.customer_id!r}", type="UnknownCustomer", non_retryable=True
                )
            context = {**customer_context(customer, self._settings), **input.context}
            try:
                rendered = self._renderer.render(input.template, context)
            except TemplateError as exc:
                # Retried (with backoff) rather than dropped: fixing the template lets it go out.
                raise ApplicationError(str(exc), type="TemplateError") from None
            now = datetime.now(UTC)
            outgoing = OutgoingEmail(
                to_address=customer.email,
                from_address=self._settings.email_sender,
                rendered=rendered,
                category=input.category,
                campaign=input.campaign,
                step=input.step,
                message_key=input.idempotency_key,
            )
            message = EmailMessage(
                idempotency_key=input.idempotency_key,
                customer_id=customer.id,
                campaign=input.campaign,
                step=input.step,
                template=input.template,
                template_version=rendered.version,
                category=input.category,
                to_address=customer.email,
                from_address=self._settings.email_sender,
                subject=rendered.subject,
                html=rendered.html,
                text=rendered.text,
                provider=self._provider.name,
                status="sending",
                created_at=now,
            )
            session.add(message)
            try:
                session.flush()
            except IntegrityError:
                session.rollback()
                return SendEmailResult("duplicate", None, "already sent for this step")
            message.provider_message_id = self._provider.send(outgoing)
            message.status = "sent"
            message.sent_at = now
            session.add(
                LifecycleEvent(
                    event_key=f"email:{input.idempotency_key}",
                    customer_id=customer.id,
                    kind="email_sent",
                    campaign=input.campaign,
                    detail={"step": input.step, "template": input.template, "subject": rendered.subject},
                    occurred_at=now,
                )
            )
            session.commit()
            return SendEmailResult("sent", message.id)
