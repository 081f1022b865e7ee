"""The send pipeline with the real database and a real SMTP server (aiosmtpd).

Unsubscribed → no marketing, but dunning; hard bounce → nothing; retries never send
twice; cap and quiet hours defer (and say why in the timeline); A/B holdout gets nothing.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy

import pytest
from sqlalchemy import select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.email import EmailActivities
from lifecycle.contracts.email import SendEmailInput
from lifecycle.contracts.policy import EmailVariant
from lifecycle.db import session_scope
from lifecycle.email.providers import OutboxProvider, SmtpProvider
from lifecycle.email.service import EmailService
from lifecycle.email.suppressions import add_suppression
from lifecycle.models import EmailMessage, LifecycleEvent
from tests.support.email import EmailDB, make_settings, utc

NOON = utc(2026, 3, 3, 12)  # 12:00 UTC: inside the default send window in UTC


def smtp_service(email_db: EmailDB, port: int, **settings: object) -> EmailService:
    return EmailService(email_db.factory, SmtpProvider("127.0.0.1", port),
                        make_settings(email_db.url, **settings))


def inp(key: str, customer: str = "cus_1", **kw: object) -> SendEmailInput:
    base: dict[str, object] = dict(customer_id=customer, template="welcome", idempotency_key=key,
                                   campaign="onboarding", step="welcome", now=NOON)
    base.update(kw)
    return SendEmailInput(**base)  # type: ignore[arg-type]


def timeline(email_db: EmailDB, customer: str = "cus_1") -> list[tuple[str, str]]:
    with session_scope(email_db.factory) as s:
        rows = s.scalars(select(LifecycleEvent).where(LifecycleEvent.customer_id == customer)
                         .order_by(LifecycleEvent.id))
        return [(r.kind, str(r.detail.get("reason", ""))) for r in rows]


async def test_sent_email_reaches_smtp_with_unsubscribe_headers_and_is_recorded(
    email_db: EmailDB, smtp
) -> None:
    sink, port = smtp
    email_db.add_customer("cus_1")
    result = await smtp_service(email_db, port).send(inp("k1"))
    assert result.status == "sent" and result.template_version == "file"
    [env] = sink.messages
    parsed = email.message_from_bytes(env.original_content, policy=email.policy.default)
    assert parsed["List-Unsubscribe"].startswith("<https://lifecycle.example.com/unsubscribe?token=")
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["X-Lifecycle-Message-Id"] == str(result.message_id)
    with session_scope(email_db.factory) as s:
        row = s.get(EmailMessage, result.message_id)
        assert row.status == "sent" and row.provider == "smtp" and row.template_version == "file"
        assert row.subject == "Welcome aboard, Grace"
    assert timeline(email_db) == [("email_sent", "")]


async def test_unsubscribed_customer_gets_no_marketing_but_does_get_dunning(
    email_db: EmailDB, smtp
) -> None:
    sink, port = smtp
    email_db.add_customer("cus_1")
    with session_scope(email_db.factory) as s:
        add_suppression(s, email="cus_1@example.org", reason="unsubscribe", customer_id="cus_1",
                        source="test")
    service = smtp_service(email_db, port)
    marketing = await service.send(inp("m1"))
    assert marketing.status == "skipped" and marketing.reason == "unsubscribed"
    dunning = await service.send(inp("d1", template="trial_reminder", campaign="dunning",
                                     step="day_1", category="transactional",
                                     context={"days_left": 1, "has_payment_method": False}))
    assert dunning.status == "sent"
    assert len(sink.messages) == 1 and b"Your trial ends in 1 day" in sink.messages[0].original_content
    assert ("email_skipped", "unsubscribed") in timeline(email_db)


async def test_hard_bounce_suppresses_every_further_send(email_db: EmailDB, smtp) -> None:
    sink, port = smtp
    email_db.add_customer("cus_1")
    with session_scope(email_db.factory) as s:
        add_suppression(s, email="CUS_1@example.org", reason="bounce", customer_id=None,
                        source="sendgrid:bounce")
    service = smtp_service(email_db, port)
    for key, category in (("m", "marketing"), ("t", "transactional")):
        result = await service.send(inp(key, category=category))
        assert result.status == "skipped" and result.reason == "suppressed: hard bounce"
    assert sink.messages == []


async def test_a_retried_send_never_sends_twice(
    email_db: EmailDB, smtp, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink, port = smtp
    email_db.add_customer("cus_1")
    service = smtp_service(email_db, port)
    env = ActivityEnvironment()
    activities = EmailActivities(email_db.factory, service.settings, service.provider)

    # 1. the provider says "later" (SMTP 451): retryable, nothing sent, row queued
    sink.reply = "451 4.3.0 try later"
    with pytest.raises(ApplicationError) as exc:
        await env.run(activities.send_email, inp("r1"))
    assert not exc.value.non_retryable and exc.value.type == "ProviderUnavailable"
    sink.reply = "250 OK"
    first = await env.run(activities.send_email, inp("r1"))  # Temporal's retry
    again = await env.run(activities.send_email, inp("r1"))  # a duplicate delivery
    assert (first.status, again.status) == ("sent", "duplicate")
    assert again.message_id == first.message_id
    assert len(sink.messages) == 1

    # 2. the crash window: handed over, then the worker dies before recording "sent"
    original = EmailService._record_sent

    def crash(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        raise ConnectionError("database went away after the provider took the message")

    monkeypatch.setattr(EmailService, "_record_sent", crash)
    with pytest.raises(ConnectionError):
        await env.run(activities.send_email, inp("r2", template="tip_api", step="tip_api",
                                                  now=NOON + dt.timedelta(days=2)))
    monkeypatch.setattr(EmailService, "_record_sent", original)
    retry = await env.run(activities.send_email, inp("r2", template="tip_api", step="tip_api",
                                                      now=NOON + dt.timedelta(days=2)))
    assert retry.status == "uncertain"
    assert len(sink.messages) == 2  # the first message plus r2 once: never twice
    assert ("email_uncertain", "an earlier attempt stopped after handing over; not resent") in timeline(email_db)


async def test_provider_refusal_is_final_with_the_providers_words(
    email_db: EmailDB, smtp
) -> None:
    sink, port = smtp
    email_db.add_customer("cus_1")
    service = smtp_service(email_db, port)
    activities = EmailActivities(email_db.factory, service.settings, service.provider)
    sink.reply = "550 5.1.1 mailbox unavailable"
    with pytest.raises(ApplicationError) as exc:
        await ActivityEnvironment().run(activities.send_email, inp("f1"))
    assert exc.value.non_retryable and "mailbox unavailable" in str(exc.value)
    assert timeline(email_db)[-1][0] == "email_failed"


async def test_cap_defers_the_second_marketing_email_and_transactional_ignores_it(
    email_db: EmailDB,
) -> None:
    email_db.add_customer("cus_1")
    service = EmailService(email_db.factory, OutboxProvider(), make_settings(email_db.url))
    assert (await service.send(inp("c1"))).status == "sent"
    later = NOON + dt.timedelta(hours=3)
    second = await service.send(inp("c2", template="tip_api", step="tip_api", now=later))
    assert second.status == "deferred" and second.not_before == NOON + dt.timedelta(hours=24)
    assert "frequency cap" in second.reason
    receipt = await service.send(inp("c3", template="trial_reminder", category="transactional",
                                     context={"days_left": 1, "has_payment_method": True}, now=later))
    assert receipt.status == "sent"
    again = await service.send(inp("c2", template="tip_api", step="tip_api",
                                   now=NOON + dt.timedelta(hours=24)))
    assert again.status == "sent"
    kinds = [k for k, _ in timeline(email_db)]
    assert kinds == ["email_sent", "email_deferred", "email_sent", "email_sent"]


async def test_quiet_hours_defer_to_the_next_window_in_the_customers_zone(
    email_db: EmailDB,
) -> None:
    email_db.add_customer("cus_tokyo", timezone="Asia/Tokyo")
    service = EmailService(email_db.factory, OutboxProvider(), make_settings(email_db.url))
    result = await service.send(inp("q1", customer="cus_tokyo"))  # 12:00 UTC = 21:00 Tokyo
    assert result.status == "deferred"
    assert result.not_before == utc(2026, 3, 4, 0)  # 09:00 Tokyo
    assert "quiet hours 18:00-09:00 in Asia/Tokyo: it is 21:00 there" in result.reason
    assert timeline(email_db, "cus_tokyo")[0][0] == "email_deferred"
    cannot_wait = await service.send(inp("q2", customer="cus_tokyo", allow_defer=False))
    assert cannot_wait.status == "skipped" and "quiet hours" in cannot_wait.reason


async def test_ab_variants_are_recorded_and_the_holdout_gets_nothing(
    email_db: EmailDB,
) -> None:
    service = EmailService(email_db.factory, OutboxProvider(), make_settings(
        email_db.url, email_frequency_cap=0))
    variants = [EmailVariant("long", "welcome"), EmailVariant("short", "tip_first_project")]
    statuses: dict[str, str] = {}
    for i in range(40):
        cid = f"cus_ab{i}"
        email_db.add_customer(cid)
        r = await service.send(inp(f"ab{i}", customer=cid, variants=variants, holdout=0.25))
        statuses[cid] = r.variant
        assert r.status == ("holdout" if r.variant == "holdout" else "sent")
        # a retry of the same step answers the same arm
        assert (await service.send(inp(f"ab{i}", customer=cid, variants=variants,
                                       holdout=0.25))).variant == r.variant
    assert set(statuses.values()) == {"long", "short", "holdout"}
    with session_scope(email_db.factory) as s:
        rows = list(s.scalars(select(EmailMessage).order_by(EmailMessage.id)))
        for row in rows:
            assert row.variant == statuses[row.customer_id]
            if row.variant == "holdout":
                assert row.status == "holdout" and row.html == "" and row.provider == "none"
            else:
                expected = "welcome" if row.variant == "long" else "tip_first_project"
                assert row.template == expected and row.status == "sent"


async def test_goal_met_is_recorded_as_a_skip(email_db: EmailDB) -> None:
    email_db.add_customer("cus_1")
    service = EmailService(email_db.factory, OutboxProvider(), make_settings(email_db.url))
    r = await service.send(inp("g1", skip_reason="goal met: created_first_project"))
    assert r.status == "skipped"
    assert timeline(email_db) == [("email_skipped", "goal met: created_first_project")]


async def test_two_campaigns_racing_for_the_last_slot_send_only_one(email_db: EmailDB) -> None:
    import asyncio

    email_db.add_customer("cus_1")
    service = EmailService(email_db.factory, OutboxProvider(), make_settings(email_db.url))
    results = await asyncio.gather(*[
        service.send(inp(f"race{i}", template="tip_api", campaign=f"c{i}", step="s"))
        for i in range(4)
    ])
    assert sorted(r.status for r in results) == ["deferred", "deferred", "deferred", "sent"]


async def test_sendgrid_gets_the_unsubscribe_headers_and_our_ids(
    email_db: EmailDB, sendgrid_server
) -> None:
    from lifecycle.email.providers import SendGridProvider
    from lifecycle.email.unsubscribe import read_token

    email_db.add_customer("cus_1")
    settings = make_settings(email_db.url)
    provider = SendGridProvider("SG.k", base_url=sendgrid_server.url)
    result = await EmailService(email_db.factory, provider, settings).send(inp("sg1"))
    assert result.status == "sent"
    [req] = sendgrid_server.requests
    headers = req["json"]["headers"]
    url = headers["List-Unsubscribe"].strip("<>")
    assert read_token(settings.unsubscribe_secret, url.split("token=")[1]) == "cus_1"
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert req["json"]["custom_args"]["lifecycle_message_id"] == str(result.message_id)
    with session_scope(email_db.factory) as s:
        assert s.get(EmailMessage, result.message_id).provider_message_id == "sg-abc123"


async def test_a_published_version_and_its_revert_take_effect_on_the_next_send(
    email_db: EmailDB,
) -> None:
    """One running service (a worker): no restart between publishing and sending."""
    from lifecycle.email.templates.versions import publish, unpublish
    from lifecycle.settings import PROJECT_ROOT

    service = EmailService(email_db.factory, OutboxProvider(), make_settings(
        email_db.url, email_frequency_cap=0))
    source = (PROJECT_ROOT / "templates" / "email" / "welcome.j2").read_text()

    async def send(key: str) -> tuple[str, str]:
        email_db.add_customer(f"cus_{key}")
        r = await service.send(inp(key, customer=f"cus_{key}"))
        assert r.status == "sent"
        with session_scope(email_db.factory) as s:
            row = s.get(EmailMessage, r.message_id)
            return row.template_version, row.subject

    assert await send("p0") == ("file", "Welcome aboard, Grace")
    with session_scope(email_db.factory) as s:
        publish(s, "welcome", source.replace("Welcome aboard,", "Hello again,"))
    assert await send("p1") == ("v1", "Hello again, Grace")
    with session_scope(email_db.factory) as s:
        publish(s, "welcome", source.replace("Welcome aboard,", "Third time,"))
    assert await send("p2") == ("v2", "Third time, Grace")
    with session_scope(email_db.factory) as s:
        unpublish(s, "welcome")
    assert await send("p3") == ("file", "Welcome aboard, Grace")
