"""Webhooks to the product never reach inside the network (SSRF): loopback, link-local,
private, multicast, reserved and unspecified addresses are refused at registration and at
every delivery (after resolving the name, to the address checked), unless
LIFECYCLE_WEBHOOK_ALLOW_PRIVATE; plain http only in development."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.webhooks import WebhookActivities
from lifecycle.contracts.webhooks import DeliveryRef, WebhookEvent
from lifecycle.db import session_scope
from lifecycle.models import WebhookDelivery
from lifecycle.settings import Settings
from lifecycle.webhooks import deliveries
from lifecycle.webhooks.addresses import development
from lifecycle.webhooks.endpoints import BadEndpoint, add_endpoint, check_url, url_rules
from tests.support.webhook_receiver import receiving

ENGINE = "http://127.0.0.1:8000"


def public(host: str, port: int) -> list[str]:
    return ["93.184.215.14"]  # a public address, whatever the name (the machine may be offline)


@pytest.mark.parametrize(("url", "why"), [
    ("http://127.0.0.1:9000/hooks", "loopback"),
    ("http://[::1]:9000/hooks", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]/h", "link-local"),
    ("http://10.0.0.5/h", "private"),
    ("http://172.16.1.1/h", "private"),
    ("http://192.168.1.1/h", "private"),
    ("http://100.64.0.1/h", "private"),
    ("http://[fd00::1]/h", "private"),  # IPv6 ULA fc00::/7
    ("http://[::ffff:10.0.0.1]/h", "private"),  # IPv4-mapped IPv6
    ("http://[::ffff:169.254.169.254]/h", "link-local"),
    ("http://224.0.0.1/h", "multicast"),
    ("http://[ff02::1]/h", "multicast"),
    ("http://240.0.0.1/h", "reserved"),
    ("http://0.0.0.0:9000/h", "unspecified"),
    ("http://localhost:9000/h", "localhost resolves to"),  # a name: checked after resolving it
])
def test_an_address_inside_the_network_is_refused_at_registration(url: str, why: str) -> None:
    with pytest.raises(BadEndpoint) as err:
        check_url(url, ENGINE, https_only=False)
    assert err.value.field == "url" and why in err.value.reason


def test_a_name_resolving_inside_is_refused_and_one_that_does_not_resolve_is_a_warning() -> None:
    with pytest.raises(BadEndpoint, match="product.example resolves to 10.1.2.3, which is a private"):
        check_url("https://product.example/h", ENGINE, resolve=lambda h, p: ["93.184.215.14", "10.1.2.3"])

    def offline(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    [warning] = check_url("https://product.example/h", ENGINE, resolve=offline)
    assert "does not resolve" in warning and "each delivery" in warning
    assert check_url("https://product.example/h", ENGINE, resolve=public) == []


def test_allow_private_lets_loopback_and_private_through_but_never_link_local() -> None:
    assert check_url("http://127.0.0.1:9000/hooks", ENGINE, allow_private=True, https_only=False) == []
    assert check_url("http://10.0.0.5/h", ENGINE, allow_private=True, https_only=False) == []
    with pytest.raises(BadEndpoint, match="link-local"):
        check_url("http://169.254.169.254/", ENGINE, allow_private=True, https_only=False)


def test_https_only_outside_development(settings: Settings) -> None:
    assert development(settings) and url_rules(settings)["https_only"] is False
    for live in (settings.model_copy(update={"public_url": "https://lifecycle.example.com"}),
                 settings.model_copy(update={"email_provider": "sendgrid"}),
                 settings.model_copy(update={"stripe_api_key": SecretStr("sk_live_x")})):
        assert not development(live)
        with pytest.raises(BadEndpoint, match="must be https://"):
            check_url("http://product.example/h", live.public_url, resolve=public, **url_rules(live))
    assert check_url("https://product.example/h", ENGINE, resolve=public) == []


async def _one_delivery(sessions: sessionmaker[Session], url: str) -> tuple[int, str]:
    """An endpoint registered while its name resolved to a public address, and one delivery."""
    with session_scope(sessions) as s:
        new = add_endpoint(s, url, ["customer.stage_changed"], engine_url=ENGINE, allow_private=True,
                     https_only=False, resolve=public)
        [ref] = deliveries.record_event(s, WebhookEvent(
            event_id=f"evt-{uuid.uuid4().hex[:8]}", customer_id="c1", type="customer.stage_changed",
            occurred_at=dt.datetime.now(dt.UTC), data={"stage": "active"}))
    return ref.delivery_id, new.secret


async def test_each_delivery_resolves_again_and_refuses_a_name_now_inside(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    """Registered while the name resolved to a public address; at delivery it resolves to
    127.0.0.1 (DNS rebinding): refused, recorded as failed with the reason and no body."""
    async with receiving() as receiver:
        delivery_id, _ = await _one_delivery(session_factory, f"http://product.test:{receiver.port}/hooks")
        strict = settings.model_copy(update={"webhook_allow_private": False})

        async def rebound(host: str, port: int) -> list[str]:
            return ["127.0.0.1"]

        acts = WebhookActivities(session_factory, strict, resolve=rebound)
        with pytest.raises(ApplicationError, match="refused: product.test resolves to 127.0.0.1"):
            await ActivityEnvironment().run(acts.deliver_webhook, DeliveryRef(delivery_id, ""))
        assert receiver.requests == []
        with session_factory() as s:
            row = s.get(WebhookDelivery, delivery_id)
            assert row is not None
            assert (row.status, row.status_code, row.response_head) == ("pending", None, None)
            assert row.error and "loopback address" in row.error and row.attempts == 1


async def test_a_delivery_connects_to_the_address_checked_with_the_name_in_host(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    """product.test is in no DNS: only the resolver's checked answer can reach the receiver,
    and the receiver still sees its name in the Host header."""
    async with receiving() as receiver:
        delivery_id, receiver.secrets["/hooks"] = await _one_delivery(
            session_factory, f"http://product.test:{receiver.port}/hooks")

        async def local(host: str, port: int) -> list[str]:
            return ["127.0.0.1"]

        acts = WebhookActivities(session_factory, settings, resolve=local)  # allow_private (conftest)
        result = await ActivityEnvironment().run(acts.deliver_webhook, DeliveryRef(delivery_id, ""))
        assert result.delivered
        [request] = receiver.requests
        assert request.verified and request.headers["host"] == f"product.test:{receiver.port}"
