"""Email providers: outbox (default), SMTP, SendGrid. Chosen by ``LIFECYCLE_EMAIL_PROVIDER``.

A provider gets a fully rendered :class:`OutgoingEmail` and either hands it over (and
returns the provider's message id) or raises :class:`ProviderError`, which says

* ``retryable``: the provider did not take the message and may later (SendGrid 429
  and 5xx, SMTP 4xx, connection refused). The email activity raises a retryable error
  and Temporal retries with backoff (honouring Retry-After when given).
* not retryable: the provider refused it for good (SendGrid 4xx other than 429, SMTP
  5xx); the message carries the provider's own words.
* ``outcome_unknown``: the request went out but no answer came back (a read timeout, a
  dropped connection after DATA). The provider may have sent it. The activity does not
  send again (see docs/email.md, "Never twice").

Providers are built once by the worker from settings (:func:`make_provider`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import smtplib
import socket
import ssl
import urllib.error
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, getaddresses
from typing import Protocol

from python_http_client import exceptions as http_exc
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Category,
    Content,
    CustomArg,
    From,
    Header,
    Mail,
    MailSettings,
    ReplyTo,
    SandBoxMode,
    To,
)

from lifecycle.settings import (
    UNSAFE_UNSUBSCRIBE_SECRET,
    Settings,
    SettingsError,
    production_reasons,
    weak_secret,
)


class ProviderError(Exception):
    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        outcome_unknown: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.outcome_unknown = outcome_unknown
        self.status = status
        self.retry_after = retry_after


@dataclass
class OutgoingEmail:
    message_id: int  # our email_messages.id
    to: str
    sender: str
    subject: str
    html: str
    text: str
    headers: dict[str, str] = field(default_factory=dict)  # List-Unsubscribe, X-Lifecycle-*
    reply_to: str | None = None
    campaign: str = ""
    step: str = ""
    category: str = "marketing"
    is_test: bool = False

    def message_id_header(self) -> str:
        """A stable RFC 5322 Message-ID: the same message always gets the same one."""
        domain = _domain(self.sender)
        tag = hashlib.sha256(f"{self.message_id}:{self.to}".encode()).hexdigest()[:12]
        return f"<lifecycle.{self.message_id}.{tag}@{domain}>"


def _domain(address: str) -> str:
    parsed = getaddresses([address])
    addr = parsed[0][1] if parsed else ""
    return addr.rpartition("@")[2] or "localhost"


class EmailProvider(Protocol):
    name: str

    async def send(self, email: OutgoingEmail) -> str:
        """Hand the email over; return the provider's message id."""
        ...


class OutboxProvider:
    """Sends nothing: the stored ``email_messages`` row is the outbox (`lifecycle outbox list`)."""

    name = "outbox"

    async def send(self, email: OutgoingEmail) -> str:
        return f"outbox-{email.message_id}"


# --- SMTP -------------------------------------------------------------------------------


def build_mime(email: OutgoingEmail) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = email.subject
    msg["From"] = email.sender
    msg["To"] = email.to
    if email.reply_to:
        msg["Reply-To"] = email.reply_to
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = email.message_id_header()
    for key, value in email.headers.items():
        msg[key] = value
    msg.set_content(email.text)
    msg.add_alternative(email.html, subtype="html")
    return msg


class SmtpProvider:
    """Any SMTP server (smtplib in a thread). SMTP's own codes decide: 4xx retry, 5xx fail."""

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        user: str | None = None,
        password: str | None = None,
        tls: str = "none",
        timeout: float = 20.0,
        ca_file: str | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.user, self.password = user, password
        self.tls, self.timeout = tls, timeout
        self.ca_file = ca_file  # a private CA's bundle; default: the system's CAs

    async def send(self, email: OutgoingEmail) -> str:
        return await asyncio.to_thread(self._send, email)

    def _connect(self) -> smtplib.SMTP:
        if self.tls == "ssl":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._tls())
        conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.tls == "starttls":
            conn.starttls(context=self._tls())
        return conn

    def _tls(self) -> ssl.SSLContext:
        """Certificate and host name verified, always (against ca_file when one is given)."""
        return ssl.create_default_context(cafile=self.ca_file)

    def _send(self, email: OutgoingEmail) -> str:
        mime = build_mime(email)
        where = f"SMTP {self.host}:{self.port}"
        try:  # before the message is handed over: any failure means "not sent"
            conn = self._connect()
            if self.user:
                try:
                    conn.login(self.user, self.password or "")
                except BaseException:
                    conn.close()
                    raise
        except smtplib.SMTPResponseException as exc:
            raise _smtp_error(where, exc.smtp_code, exc.smtp_error) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ProviderError(f"{where}: cannot connect: {exc}", retryable=True) from None
        try:
            with conn:
                refused = conn.send_message(mime)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise _smtp_error(where, code, text) from None
        except smtplib.SMTPResponseException as exc:
            raise _smtp_error(where, exc.smtp_code, exc.smtp_error) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ProviderError(
                f"{where}: connection lost while sending: {exc}",
                retryable=False,
                outcome_unknown=True,
            ) from None
        if refused:
            code, text = next(iter(refused.values()))
            raise _smtp_error(where, code, text)
        return str(mime["Message-ID"])


def _smtp_error(where: str, code: int, text: bytes | str) -> ProviderError:
    words = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    transient = 400 <= code < 500
    return ProviderError(f"{where} answered {code}: {words}", retryable=transient, status=code)


# --- SendGrid ---------------------------------------------------------------------------


class SendGridProvider:
    """SendGrid's v3 mail-send API through the ``sendgrid`` SDK.

    Categories and custom args carry campaign, step and our message id, so the Event
    Webhook's events come back tagged with them (``lifecycle_message_id``).
    """

    name = "sendgrid"

    def __init__(
        self, api_key: str, *, base_url: str = "https://api.sendgrid.com", sandbox: bool = False,
        timeout: float = 15.0,
    ) -> None:
        self.client = SendGridAPIClient(api_key=api_key, host=base_url.rstrip("/"))
        self.client.client.timeout = timeout  # python_http_client passes it to each request
        self.sandbox = sandbox

    def build(self, email: OutgoingEmail) -> Mail:
        sender = getaddresses([email.sender])[0]
        mail = Mail(
            from_email=From(sender[1], sender[0] or None),
            to_emails=To(email.to),
            subject=email.subject,
        )
        mail.content = [Content("text/plain", email.text), Content("text/html", email.html)]
        if email.reply_to:
            rt = getaddresses([email.reply_to])[0]
            mail.reply_to = ReplyTo(rt[1], rt[0] or None)
        headers = dict(email.headers)
        headers["Message-ID"] = email.message_id_header()
        mail.header = [Header(k, v) for k, v in headers.items()]
        categories = [c for c in (email.campaign, email.step, email.category) if c]
        if email.is_test:
            categories.append("test")
        mail.category = [Category(c[:255]) for c in dict.fromkeys(categories)]
        args = {
            "lifecycle_message_id": str(email.message_id),
            "campaign": email.campaign,
            "step": email.step,
        }
        mail.custom_arg = [CustomArg(k, v) for k, v in args.items() if v]
        if self.sandbox:
            mail.mail_settings = MailSettings(sandbox_mode=SandBoxMode(True))
        return mail

    async def send(self, email: OutgoingEmail) -> str:
        return await asyncio.to_thread(self._send, email)

    def _send(self, email: OutgoingEmail) -> str:
        payload = self.build(email).get()
        try:
            response = self.client.send(payload)
        except http_exc.HTTPError as exc:
            raise _sendgrid_error(exc) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError | socket.timeout):
                raise ProviderError(
                    f"SendGrid: no answer in time: {exc.reason}", retryable=False, outcome_unknown=True
                ) from None
            raise ProviderError(f"SendGrid: cannot connect: {exc.reason}", retryable=True) from None
        except (TimeoutError, ConnectionError, OSError) as exc:
            raise ProviderError(
                f"SendGrid: connection lost: {exc}", retryable=False, outcome_unknown=True
            ) from None
        headers = {k.lower(): v for k, v in dict(response.headers or {}).items()}
        return headers.get("x-message-id") or f"sendgrid-{email.message_id}"


def _sendgrid_error(exc: http_exc.HTTPError) -> ProviderError:
    status = int(exc.status_code)
    body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else str(exc.body or "")
    try:
        errors = json.loads(body).get("errors", [])
        words = "; ".join(
            (f"{e.get('field')}: " if e.get("field") else "") + str(e.get("message", ""))
            for e in errors
        ) or body
    except (ValueError, AttributeError):
        words = body or str(exc.reason)
    retry_after = None
    if exc.headers is not None:
        raw = exc.headers.get("Retry-After") if hasattr(exc.headers, "get") else None
        try:
            retry_after = float(raw) if raw else None
        except ValueError:
            retry_after = None
    retryable = status == 429 or status >= 500
    return ProviderError(
        f"SendGrid answered {status}: {words}", retryable=retryable, status=status,
        retry_after=retry_after,
    )


# --- from settings ----------------------------------------------------------------------


def make_provider(settings: Settings) -> EmailProvider:
    """The provider the settings name; refuses settings that would mail real people unsafely."""
    if settings.email_provider == "outbox":
        return OutboxProvider()
    # a real provider makes the settings production-like (lifecycle.settings.production_reasons):
    # the unsubscribe secret must be what the worker's start check asks of every secret
    weak = weak_secret(settings.unsubscribe_secret, UNSAFE_UNSUBSCRIBE_SECRET)
    if weak and production_reasons(settings):
        raise SettingsError(
            f"LIFECYCLE_UNSUBSCRIBE_SECRET {weak}: set a long random value before using the "
            f"{settings.email_provider} provider (unsubscribe links are signed with it)"
        )
    if settings.email_provider == "smtp":
        return SmtpProvider(
            settings.smtp_host,
            settings.smtp_port,
            user=settings.smtp_user,
            password=settings.smtp_password,
            tls=settings.smtp_tls,
            timeout=settings.smtp_timeout,
            ca_file=str(settings.smtp_ca_file) if settings.smtp_ca_file else None,
        )
    if not settings.sendgrid_api_key:
        raise SettingsError("LIFECYCLE_SENDGRID_API_KEY: required with LIFECYCLE_EMAIL_PROVIDER=sendgrid")
    return SendGridProvider(
        settings.sendgrid_api_key,
        base_url=settings.sendgrid_base_url,
        sandbox=settings.sendgrid_sandbox_mode,
        timeout=settings.sendgrid_timeout,
    )
