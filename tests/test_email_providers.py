"""Providers against real servers: SMTP (aiosmtpd) and SendGrid's v3 mail-send (a local HTTP server)."""

from __future__ import annotations

import email
import email.policy
import json
import ssl
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from lifecycle.email.providers import (
    OutgoingEmail,
    ProviderError,
    SendGridProvider,
    SmtpProvider,
    make_provider,
)
from lifecycle.settings import SettingsError, load_settings
from tests.conftest import free_port
from tests.support.email import FakeSendGrid, SmtpSink

UNSUB = "https://lifecycle.example.com/unsubscribe?token=abc.def"


def outgoing(**kw: Any) -> OutgoingEmail:
    base: dict[str, Any] = dict(
        message_id=42, to="grace@example.org", sender="Example <hello@example.com>",
        subject="Welcome, Grace", html="<p>Hello <b>Grace</b></p>", text="Hello Grace\n",
        headers={"List-Unsubscribe": f"<{UNSUB}>",
                 "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                 "X-Lifecycle-Message-Id": "42"},
        campaign="onboarding", step="welcome", category="marketing",
    )
    base.update(kw)
    return OutgoingEmail(**base)


# --- SMTP -------------------------------------------------------------------------------


async def test_smtp_delivers_a_multipart_message_with_one_click_unsubscribe(smtp) -> None:
    sink, port = smtp
    provider = SmtpProvider("127.0.0.1", port)
    msg_id = await provider.send(outgoing())
    assert len(sink.messages) == 1
    env = sink.messages[0]
    assert env.mail_from == "hello@example.com" and env.rcpt_tos == ["grace@example.org"]
    parsed = email.message_from_bytes(env.original_content, policy=email.policy.default)
    assert parsed["Subject"] == "Welcome, Grace"
    assert parsed["List-Unsubscribe"] == f"<{UNSUB}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["Message-ID"] == msg_id and "@example.com>" in msg_id
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Hello Grace\n"
    assert "<b>Grace</b>" in parsed.get_body(("html",)).get_content()
    # the same message always carries the same Message-ID
    assert outgoing().message_id_header() == msg_id


async def test_smtp_transient_4xx_is_retryable_and_5xx_is_final(smtp) -> None:
    sink, port = smtp
    provider = SmtpProvider("127.0.0.1", port)
    sink.reply = "451 4.3.0 Try again later"
    with pytest.raises(ProviderError) as exc:
        await provider.send(outgoing())
    assert exc.value.retryable and exc.value.status == 451
    sink.reply = "554 5.7.1 Message rejected as spam"
    with pytest.raises(ProviderError) as exc:
        await provider.send(outgoing())
    assert not exc.value.retryable and "rejected as spam" in exc.value.message
    assert sink.messages == []


async def test_smtp_unreachable_server_is_retryable() -> None:
    with pytest.raises(ProviderError) as exc:
        await SmtpProvider("127.0.0.1", free_port(), timeout=2).send(outgoing())
    assert exc.value.retryable and not exc.value.outcome_unknown


# --- SendGrid ---------------------------------------------------------------------------


async def test_sendgrid_posts_a_well_formed_v3_payload(sendgrid_server: FakeSendGrid) -> None:
    provider = SendGridProvider("SG.test-key", base_url=sendgrid_server.url, sandbox=True)
    provider_id = await provider.send(outgoing())
    assert provider_id == "sg-abc123"
    [req] = sendgrid_server.requests
    assert req["path"] == "/v3/mail/send"
    assert req["headers"]["Authorization"] == "Bearer SG.test-key"
    body = req["json"]
    assert body["from"] == {"email": "hello@example.com", "name": "Example"}
    assert body["subject"] == "Welcome, Grace"
    assert body["personalizations"][0]["to"] == [{"email": "grace@example.org"}]
    assert body["content"] == [{"type": "text/plain", "value": "Hello Grace\n"},
                               {"type": "text/html", "value": "<p>Hello <b>Grace</b></p>"}]
    assert body["headers"]["List-Unsubscribe"] == f"<{UNSUB}>"
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert set(body["categories"]) == {"onboarding", "welcome", "marketing"}
    assert body["custom_args"] == {"lifecycle_message_id": "42", "campaign": "onboarding",
                                   "step": "welcome"}
    assert body["mail_settings"] == {"sandbox_mode": {"enable": True}}


@pytest.mark.parametrize(
    ("status", "retryable"), [(429, True), (500, True), (503, True), (400, False), (401, False)]
)
async def test_sendgrid_errors_retry_only_429_and_5xx(
    sendgrid_server: FakeSendGrid, status: int, retryable: bool
) -> None:
    body = json.dumps({"errors": [{"message": "The from address does not match a verified Sender",
                                   "field": "from"}]}).encode()
    sendgrid_server.answers.append((status, {"Retry-After": "7"}, body))
    provider = SendGridProvider("SG.k", base_url=sendgrid_server.url)
    with pytest.raises(ProviderError) as exc:
        await provider.send(outgoing())
    assert exc.value.retryable is retryable and exc.value.status == status
    assert "from: The from address does not match a verified Sender" in exc.value.message
    if status == 429:
        assert exc.value.retry_after == 7.0


def test_real_providers_refuse_unsafe_settings() -> None:
    with pytest.raises(SettingsError, match="LIFECYCLE_UNSUBSCRIBE_SECRET"):
        make_provider(load_settings(email_provider="smtp"))
    with pytest.raises(SettingsError, match="LIFECYCLE_SENDGRID_API_KEY"):
        make_provider(load_settings(email_provider="sendgrid", unsubscribe_secret="x" * 32))
    assert make_provider(load_settings()).name == "outbox"


# --- SMTP over TLS (a test CA from trustme; certificates verified as in production) -------


@pytest.fixture
def tls_ca(tmp_path):  # noqa: ANN001, ANN201
    import trustme

    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return server_ctx, str(ca_file)


def _logins() -> tuple[list[str], Any]:
    seen: list[str] = []

    def authenticator(server, session, envelope, mechanism, auth_data):  # noqa: ANN001, ANN202
        ok = auth_data.login == b"mailer" and auth_data.password == b"s3cret"
        if ok:
            seen.append(auth_data.login.decode())
        return AuthResult(success=ok)

    return seen, authenticator


async def test_smtp_starttls_with_login_delivers_and_verifies_the_certificate(tls_ca) -> None:
    server_ctx, ca_file = tls_ca
    sink, (logins, authenticator) = SmtpSink(), _logins()
    port = free_port()
    controller = Controller(
        sink, hostname="127.0.0.1", port=port, tls_context=server_ctx, require_starttls=True,
        authenticator=authenticator, auth_require_tls=True,
    )
    controller.start()
    try:
        provider = SmtpProvider("127.0.0.1", port, user="mailer", password="s3cret", tls="starttls",
                                ca_file=ca_file)
        await provider.send(outgoing())
        assert logins == ["mailer"] and len(sink.messages) == 1
        # the same server without the private CA: the certificate is refused, nothing is sent
        untrusting = SmtpProvider("127.0.0.1", port, user="mailer", password="s3cret", tls="starttls")
        with pytest.raises(ProviderError, match="cannot connect.*CERTIFICATE_VERIFY_FAILED"):
            await untrusting.send(outgoing())
        assert len(sink.messages) == 1
    finally:
        controller.stop()


async def test_smtp_implicit_tls_delivers(tls_ca) -> None:
    server_ctx, ca_file = tls_ca
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, ssl_context=server_ctx)
    controller.start()
    try:
        await SmtpProvider("127.0.0.1", port, tls="ssl", ca_file=ca_file).send(outgoing())
        assert len(sink.messages) == 1
        assert sink.messages[0].rcpt_tos == ["grace@example.org"]
    finally:
        controller.stop()
