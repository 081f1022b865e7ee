"""Sending one email, safely: decide, record, render, hand over, record again.

Used by the email activity (``activities/email.py``) and by ``lifecycle templates
send-test``. The order of one send:

1. **Already recorded?** The idempotency key (unique per workflow step) finds an earlier
   attempt: sent → ``duplicate``; ``sending`` → an earlier attempt died between
   "sending" and "sent", so the provider may have it: ``uncertain``, never resent.
2. **May it go at all?** Suppressions (``suppressions.py``): a marketing email skips
   anyone unsubscribed, bounced or reported spam; a transactional one skips only hard
   bounces and spam reports. The workflow's own "no" (``skip_reason``, e.g. goal met) is
   recorded too.
3. **A/B test:** the variant is a hash of customer and step; the holdout gets a
   ``holdout`` row (no email) so lift can be measured.
4. **When?** Marketing email: frequency cap and quiet hours in the customer's zone. Not
   now → ``deferred`` with ``not_before``; the workflow sleeps on a durable timer and asks
   again. Transactional email goes at once.
5. **Record "sending"** with the rendered message (one transaction with the cap check,
   under a per-customer write lock, so two campaigns cannot both take the last slot),
   **then** hand it to the provider, **then** record "sent".

Every decision not to send now is a ``lifecycle_events`` row (the customer's timeline)
with its reason.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, object_session, sessionmaker

from lifecycle.billing.currencies import customer_currency
from lifecycle.contracts import catalog
from lifecycle.contracts.email import (
    EMAIL_DEFERRED,
    EMAIL_DUPLICATE,
    EMAIL_HOLDOUT,
    EMAIL_SENT,
    EMAIL_SKIPPED,
    EMAIL_UNCERTAIN,
    SendEmailInput,
    SendEmailResult,
)
from lifecycle.contracts.ops import ResendEmailInput
from lifecycle.db import add_timeline_event, session_scope
from lifecycle.email.amounts import localize_dates, localize_prices, price_text, prices_note
from lifecycle.email.page_links import page_link_vars
from lifecycle.email.providers import EmailProvider, OutgoingEmail, ProviderError
from lifecycle.email.rules import HOLDOUT, assign_variant, marketing_timing
from lifecycle.email.suppressions import blocked_because
from lifecycle.email.templates.render import (
    LAYOUT,
    RenderedEmail,
    TemplateRenderError,
    TemplateSet,
    customer_vars,
    plan_vars,
)
from lifecycle.email.templates.versions import load_published
from lifecycle.email.unsubscribe import unsubscribe_url
from lifecycle.links import card_update_url
from lifecycle.models import Customer, EmailMessage
from lifecycle.settings import Settings

# email_messages.status values
SENDING = "sending"  # recorded, being handed to the provider
QUEUED = "queued"  # recorded; the provider said "not now" (retry will send the stored message)
SENT = "sent"
FAILED = "failed"  # the provider refused it for good
UNCERTAIN = "uncertain"  # handed over, no answer: maybe sent; never resent
HELD_OUT = "holdout"  # A/B holdout: no email
# forward-only delivery progress (webhook events never move a message backwards)
PROGRESS = {SENDING: 0, QUEUED: 0, UNCERTAIN: 1, SENT: 1, "delivered": 2, "opened": 3, "clicked": 4}
NOT_COUNTED_FOR_CAP = {FAILED, HELD_OUT}
# what ops may send again on purpose (`lifecycle customer action resend`): maybe never
# delivered, or refused by the receiving server
RESENDABLE = {UNCERTAIN, "bounced"}


class EmailRejected(Exception):
    """Sending cannot succeed by retrying (unknown customer, broken template, provider 4xx)."""

    def __init__(self, message: str, kind: str = "EmailRejected") -> None:
        super().__init__(message)
        self.kind = kind


class EmailRetryLater(Exception):
    """The provider did not take the message now; retry later (after ``retry_after`` s)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Ready:
    """A message recorded as ``sending`` and built, ready to hand to the provider."""

    message_id: int
    email: OutgoingEmail
    variant: str | None
    template_version: str


class EmailService:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        provider: EmailProvider,
        settings: Settings,
        *,
        templates_dir: Path | None = None,
    ) -> None:
        self.sessions = session_factory
        self.provider = provider
        self.settings = settings
        self.templates_dir = templates_dir or (settings.templates_dir / "email")
        # compiled templates, by the published versions they were built with
        self._template_sets: dict[frozenset[tuple[str, int]], TemplateSet] = {}

    # --- the pipeline -------------------------------------------------------------------

    async def send(self, inp: SendEmailInput) -> SendEmailResult:
        now = inp.now or dt.datetime.now(dt.UTC)
        if now.tzinfo is None:
            now = now.replace(tzinfo=dt.UTC)
        step = await asyncio.to_thread(self._prepare, inp, now)
        if isinstance(step, SendEmailResult):
            return step
        return await self.hand_over(inp, step, now)

    def templates_for(self, session: Session, name: str) -> TemplateSet:
        """The templates in force for ``name``.

        Which versions are published is read on every send (one indexed query), so a
        ``lifecycle templates publish`` or ``--revert`` takes effect on the next send without
        a restart. Compiling is not repeated: a set is kept per combination of published
        versions (a new version is a new key), and Jinja re-reads a file only when its
        mtime changes.
        """
        published = load_published(session, [name, LAYOUT])
        key = frozenset((p.name, p.version) for p in published)
        templates = self._template_sets.get(key)
        if templates is None:
            if len(self._template_sets) >= 64:  # superseded versions: start afresh
                self._template_sets.clear()
            templates = self._template_sets[key] = TemplateSet(self.templates_dir, published)
        return templates

    def standard_vars(self, customer: Customer, *, category: str, campaign: str, step: str,
                      is_test: bool = False, now: dt.datetime | None = None) -> dict[str, Any]:
        """``now``: when the email is sent (the workflow's time), from which its links expire."""
        s = self.settings
        session = object_session(customer)
        currency = customer_currency(session, customer.id) if session is not None else None
        price = (price_text(session, customer.plan_code, "month", currency)
                 if session is not None and customer.plan_code in catalog.PLANS_BY_CODE else None)
        return {
            "customer": customer_vars(
                customer_id=customer.id,
                email=customer.email,
                name=customer.name,
                company=customer.company,
                plan=customer.plan_code or catalog.NO_TIER,
                timezone=customer.timezone,
                stage=customer.stage,
            ),
            "plan": plan_vars(customer.plan_code, price),
            "prices_note": prices_note(currency),
            **self.sender_vars(),
            "unsubscribe_url": unsubscribe_url(s.public_url, s.unsubscribe_secret, customer.id),
            "card_update_url": card_update_url(
                s.public_url, s.link_secret, customer.id, now=now or dt.datetime.now(dt.UTC), ttl_days=s.link_ttl_days
            ),
            "category": category,
            "campaign": campaign,
            "step": step,
            "is_test": is_test,
        }

    def list_headers(self, customer_id: str) -> dict[str, str]:
        url = unsubscribe_url(
            self.settings.public_url, self.settings.unsubscribe_secret, customer_id
        )
        return {
            "List-Unsubscribe": f"<{url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }

    def _prepare(self, inp: SendEmailInput, now: dt.datetime) -> Ready | SendEmailResult:
        """Decide, render and record one send, in one transaction (see the module's order)."""
        with session_scope(self.sessions) as session:
            found = self._recorded(session, inp.idempotency_key)
            if found is not None and found.status != QUEUED:
                return self._earlier(session, inp, found, now)
            if inp.skip_reason:
                return self._skip(session, inp, now, inp.skip_reason)
            customer = self._customer(session, inp.customer_id)
            blocked = blocked_because(session, customer_id=customer.id, email=customer.email,
                                      category=inp.category)
            if blocked:
                return self._skip(session, inp, now, blocked)
            if found is not None:  # QUEUED: the provider said "later"; send what was stored
                return self._resume(found)
            variant, template = self._choose_variant(inp, customer)
            if variant == HOLDOUT:
                return self._hold_out(session, inp, customer, now)
            if inp.category == "marketing":
                self._lock_customer(session, customer)
                not_now = self._deferral(session, inp, customer, template, variant, now)
                if not_now is not None:
                    return not_now
            rendered = self._render_step(session, inp, customer, template)
            return self._record_sending(session, inp, customer, rendered, variant, now)
        # the transaction commits here: "sending" is durable before the provider is called

    # --- the steps of _prepare, in order -----------------------------------------------

    def _recorded(self, session: Session, key: str) -> EmailMessage | None:
        """The message an earlier attempt with this idempotency key recorded, if any."""
        return session.scalar(select(EmailMessage).where(EmailMessage.idempotency_key == key))

    def _skip(
        self, session: Session, inp: SendEmailInput, now: dt.datetime, reason: str
    ) -> SendEmailResult:
        """Not sending, and the timeline says why."""
        add_timeline_event(
            session, key=f"{inp.idempotency_key}:skipped", customer_id=inp.customer_id,
            kind="email_skipped", at=now, campaign=inp.campaign,
            detail={"step": inp.step, "template": inp.template, "reason": reason,
                    "category": inp.category},
        )
        return SendEmailResult(status=EMAIL_SKIPPED, reason=reason)

    def _customer(self, session: Session, customer_id: str) -> Customer:
        customer = session.get(Customer, customer_id)
        if customer is None:
            raise EmailRejected(f"customer {customer_id!r} not found", "UnknownCustomer")
        return customer

    def _resume(self, row: EmailMessage) -> Ready:
        """A queued message goes again exactly as it was stored."""
        row.status = SENDING
        return Ready(row.id, self.outgoing(row), row.variant, row.template_version)

    def _choose_variant(
        self, inp: SendEmailInput, customer: Customer
    ) -> tuple[str | None, str]:
        """The A/B variant of a marketing step (None: no test) and the template it sends."""
        if inp.category != "marketing":
            return None, inp.template
        variant = assign_variant(customer.id, inp.campaign, inp.step, inp.variants, inp.holdout)
        if variant is None or variant == HOLDOUT:
            return variant, inp.template
        chosen = next((v for v in inp.variants if v.name == variant), None)
        return variant, chosen.template if chosen else inp.template

    def _lock_customer(self, session: Session, customer: Customer) -> None:
        """Take the customer's write lock before reading the cap (PostgreSQL: row lock;
        SQLite: the database write lock), so concurrent campaigns serialise."""
        session.execute(
            update(Customer).where(Customer.id == customer.id).values(updated_at=Customer.updated_at)
        )

    def _deferral(
        self, session: Session, inp: SendEmailInput, customer: Customer, template: str,
        variant: str | None, now: dt.datetime,
    ) -> SendEmailResult | None:
        """Frequency cap and quiet hours: None when it may go now, else the deferral (or a
        skip when the caller cannot wait), on the timeline."""
        timing = self._timing(session, customer, now)
        if timing.now:
            return None
        reason = "; ".join(timing.reasons)
        if not inp.allow_defer:
            return self._skip(session, inp, now, f"not now and the caller cannot wait: {reason}")
        add_timeline_event(
            session, key=f"{inp.idempotency_key}:deferred:{timing.at.isoformat()}",
            customer_id=customer.id, kind="email_deferred", at=now, campaign=inp.campaign,
            detail={"step": inp.step, "template": template, "reason": reason,
                    "not_before": timing.at.isoformat()},
        )
        return SendEmailResult(
            status=EMAIL_DEFERRED, reason=reason, not_before=timing.at, variant=variant,
        )

    def _render_step(
        self, session: Session, inp: SendEmailInput, customer: Customer, template: str
    ) -> RenderedEmail:
        """The step's template with its context and the standard variables."""
        templates = self.templates_for(session, template)
        # the campaign's tier prices (catalog dollars) in the customer's currency, or marked US$
        variables = localize_prices(session, dict(inp.context), customer_currency(session, customer.id),
                                    customer.plan_code)
        variables = localize_dates(variables, customer.timezone)  # a renewal's date on their calendar
        variables.update(self.standard_vars(
            customer, category=inp.category, campaign=inp.campaign, step=inp.step, now=inp.now
        ))
        # signed page links the step describes (e.g. win-back's reactivate_url), made now
        variables.update(page_link_vars(
            self.settings, customer.id, inp.context.get("links"), inp.now or dt.datetime.now(dt.UTC)
        ))
        try:
            return templates.render(template, variables)
        except TemplateRenderError as exc:
            raise EmailRejected(str(exc), "TemplateError") from None

    def _record_sending(
        self, session: Session, inp: SendEmailInput, customer: Customer,
        rendered: RenderedEmail, variant: str | None, now: dt.datetime,
    ) -> Ready:
        """Store the rendered message as "sending", with its headers, ready to hand over."""
        headers = {
            "X-Lifecycle-Campaign": inp.campaign or "-",
            "X-Lifecycle-Step": inp.step or "-",
        }
        if inp.category == "marketing":
            headers.update(self.list_headers(customer.id))
        row = self.add_sending(
            session, rendered, key=inp.idempotency_key, to=customer.email, headers=headers,
            customer_id=customer.id, campaign=inp.campaign, step=inp.step,
            variant=variant, category=inp.category, created_at=now,
        )
        row.headers = dict(headers, **{"X-Lifecycle-Message-Id": str(row.id)})
        return Ready(row.id, self.outgoing(row), variant, rendered.template_version)

    def add_sending(
        self, session: Session, rendered: RenderedEmail, *, key: str, to: str,
        headers: dict[str, str], subject: str | None = None, **fields: Any,
    ) -> EmailMessage:
        """Store a rendered message as "sending" (flushed: it has its id)."""
        row = EmailMessage(
            idempotency_key=key,
            template=rendered.template,
            template_version=rendered.template_version,
            to_address=to,
            from_address=self.settings.email_sender,
            subject=rendered.subject if subject is None else subject,
            html=rendered.html,
            text=rendered.text,
            headers=headers,
            provider=self.provider.name,
            status=SENDING,
            **fields,
        )
        session.add(row)
        session.flush()
        return row

    def outgoing(self, row: EmailMessage) -> OutgoingEmail:
        return OutgoingEmail(
            message_id=row.id,
            to=row.to_address,
            sender=row.from_address,
            subject=row.subject,
            html=row.html,
            text=row.text,
            headers=dict(row.headers or {}),
            reply_to=self.settings.email_reply_to,
            campaign=row.campaign,
            step=row.step,
            category=row.category,
            is_test=row.is_test,
        )

    def _timing(self, session: Session, customer: Customer, now: dt.datetime) -> Any:
        s = self.settings
        # The cap counts in policy time: 24 h in production, compressed like policy days
        # when LIFECYCLE_DAY_SECONDS is (the `lifecycle dev --demo` stack).
        window = dt.timedelta(hours=s.email_frequency_cap_hours) * (s.day_seconds / 86400.0)
        recent = list(
            session.scalars(
                select(EmailMessage.created_at).where(
                    EmailMessage.customer_id == customer.id,
                    EmailMessage.category == "marketing",
                    EmailMessage.is_test.is_(False),
                    EmailMessage.status.not_in(NOT_COUNTED_FOR_CAP),
                    EmailMessage.created_at > now - window,
                )
            )
        )
        return marketing_timing(
            now,
            recent=recent,
            cap=s.email_frequency_cap,
            cap_window=window,
            zone_name=customer.timezone,
            quiet_start=s.email_quiet_hours_start,
            quiet_end=s.email_quiet_hours_end,
        )

    def _earlier(
        self, session: Session, inp: SendEmailInput, row: EmailMessage, now: dt.datetime
    ) -> SendEmailResult:
        common: dict[str, Any] = {"message_id": row.id, "variant": row.variant,
                                  "template_version": row.template_version}
        if row.status == HELD_OUT:
            return SendEmailResult(status=EMAIL_HOLDOUT, reason="A/B holdout", **common)
        if row.status == SENDING:
            # An earlier attempt recorded "sending" and then died before recording the
            # provider's answer. The provider may have the message: do not send it again.
            row.status = UNCERTAIN
            row.error = "an earlier attempt stopped after handing over; not resent"
            add_timeline_event(
                session, key=f"{inp.idempotency_key}:uncertain", customer_id=inp.customer_id,
                kind="email_uncertain", at=now, campaign=inp.campaign,
                detail={"step": inp.step, "message_id": row.id, "reason": row.error},
            )
        if row.status == UNCERTAIN:
            return SendEmailResult(status=EMAIL_UNCERTAIN, reason=row.error, **common)
        if row.status == FAILED:
            raise EmailRejected(row.error or "failed earlier", "ProviderRejected")
        return SendEmailResult(status=EMAIL_DUPLICATE, reason="sent before", **common)

    def _hold_out(
        self, session: Session, inp: SendEmailInput, customer: Customer, now: dt.datetime
    ) -> SendEmailResult:
        row = EmailMessage(
            idempotency_key=inp.idempotency_key,
            customer_id=customer.id,
            campaign=inp.campaign,
            step=inp.step,
            template=inp.template,
            template_version="-",
            variant=HOLDOUT,
            category=inp.category,
            to_address=customer.email,
            from_address=self.settings.email_sender,
            subject="",
            html="",
            text="",
            headers={},
            provider="none",
            status=HELD_OUT,
            created_at=now,
        )
        session.add(row)
        session.flush()
        add_timeline_event(
            session, key=f"{inp.idempotency_key}:holdout", customer_id=customer.id,
            kind="email_held_out", at=now, campaign=inp.campaign,
            detail={"step": inp.step, "template": inp.template, "message_id": row.id,
                    "reason": f"A/B holdout ({inp.holdout:.0%} of customers get no email)"},
        )
        return SendEmailResult(status=EMAIL_HOLDOUT, message_id=row.id, reason="A/B holdout",
                               variant=HOLDOUT)

    async def hand_over(
        self, inp: SendEmailInput, ready: Ready, now: dt.datetime
    ) -> SendEmailResult:
        try:
            provider_id = await self.provider.send(ready.email)
        except ProviderError as exc:
            await asyncio.to_thread(self._record_failure, inp, ready, exc, now)
            if exc.outcome_unknown:
                return SendEmailResult(
                    status=EMAIL_UNCERTAIN, message_id=ready.message_id, reason=exc.message,
                    variant=ready.variant, template_version=ready.template_version,
                )
            if exc.retryable:
                raise EmailRetryLater(exc.message, exc.retry_after) from None
            raise EmailRejected(exc.message, "ProviderRejected") from None
        # Crash window: if the process dies here, the row stays "sending" and the retry
        # answers "uncertain" instead of sending a second time.
        await asyncio.to_thread(self._record_sent, inp, ready, provider_id, now)
        return SendEmailResult(
            status=EMAIL_SENT, message_id=ready.message_id, variant=ready.variant,
            template_version=ready.template_version,
        )

    def _record_sent(
        self, inp: SendEmailInput, ready: Ready, provider_id: str, now: dt.datetime
    ) -> None:
        with session_scope(self.sessions) as session:
            row = session.get(EmailMessage, ready.message_id)
            assert row is not None
            row.status = SENT
            row.provider_message_id = provider_id
            row.sent_at = now
            row.error = None
            if row.customer_id and not row.is_test:
                add_timeline_event(
                    session, key=f"{inp.idempotency_key}:sent", customer_id=row.customer_id,
                    kind="email_sent", at=now, campaign=inp.campaign,
                    detail={"step": inp.step, "template": row.template, "message_id": row.id,
                            "subject": row.subject, "variant": row.variant,
                            "template_version": row.template_version,
                            "provider": row.provider},
                )

    def _record_failure(
        self, inp: SendEmailInput, ready: Ready, exc: ProviderError, now: dt.datetime
    ) -> None:
        with session_scope(self.sessions) as session:
            row = session.get(EmailMessage, ready.message_id)
            assert row is not None
            row.error = exc.message[:2000]
            if exc.outcome_unknown:
                row.status = UNCERTAIN
            elif exc.retryable:
                row.status = QUEUED
            else:
                row.status = FAILED
            if row.customer_id and not row.is_test and row.status != QUEUED:
                add_timeline_event(
                    session, key=f"{inp.idempotency_key}:{row.status}",
                    customer_id=row.customer_id,
                    kind="email_failed" if row.status == FAILED else "email_uncertain",
                    at=now, campaign=inp.campaign,
                    detail={"step": inp.step, "message_id": row.id, "reason": row.error},
                )

    # --- ops: send an email again, on purpose -------------------------------------------

    async def resend(self, inp: ResendEmailInput) -> SendEmailResult:
        """Send an ``uncertain`` or ``bounced`` email again as a new message under a new
        idempotency key (one per ops action: a retry of the action's activity sends once).
        The stored rendering goes to the customer's current address; suppressions still
        apply (a hard-bounced address stays blocked until the address changes)."""
        now = inp.now or dt.datetime.now(dt.UTC)
        step = await asyncio.to_thread(self._prepare_resend, inp, now)
        if isinstance(step, SendEmailResult):
            return step
        send_inp, ready = step
        return await self.hand_over(send_inp, ready, now)

    def _prepare_resend(
        self, inp: ResendEmailInput, now: dt.datetime
    ) -> tuple[SendEmailInput, Ready] | SendEmailResult:
        with session_scope(self.sessions) as session:
            original = session.get(EmailMessage, inp.message_id)
            if original is None or original.customer_id != inp.customer_id:
                raise EmailRejected(f"customer {inp.customer_id!r} has no email {inp.message_id}")
            send_inp = SendEmailInput(
                customer_id=inp.customer_id, template=original.template,
                idempotency_key=inp.idempotency_key, campaign=original.campaign,
                step=original.step, category=original.category,
            )
            found = self._recorded(session, inp.idempotency_key)
            if found is not None and found.status != QUEUED:
                return self._earlier(session, send_inp, found, now)
            if found is not None:
                return send_inp, self._resume(found)
            if original.status not in RESENDABLE:
                raise EmailRejected(
                    f"email {original.id} is {original.status}: only {' or '.join(sorted(RESENDABLE))} "
                    "email is sent again"
                )
            customer = self._customer(session, inp.customer_id)
            blocked = blocked_because(session, customer_id=customer.id, email=customer.email,
                                      category=original.category)
            if blocked:
                return self._skip(session, send_inp, now, blocked)
            rendered = RenderedEmail(
                template=original.template, subject=original.subject, preheader="",
                html=original.html, text=original.text, template_version=original.template_version,
            )
            row = self.add_sending(
                session, rendered, key=inp.idempotency_key, to=customer.email,
                headers=dict(original.headers or {}), customer_id=customer.id,
                campaign=original.campaign, step=original.step, variant=original.variant,
                category=original.category, created_at=now,
            )
            row.headers = dict(original.headers or {}, **{
                "X-Lifecycle-Message-Id": str(row.id), "X-Lifecycle-Resend-Of": str(original.id),
            })
            return send_inp, Ready(row.id, self.outgoing(row), row.variant, row.template_version)

    def sender_vars(self) -> dict[str, str]:
        s = self.settings
        return {
            "company_name": s.email_company_name,
            "postal_address": s.email_postal_address,
            "sender_postal_address": s.email_postal_address,
            "app_url": s.email_app_url.rstrip("/"),
        }
