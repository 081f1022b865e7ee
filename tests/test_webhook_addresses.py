"""Webhooks to the product never reach inside the network (SSRF): loopback, link-local,
private, multicast, reserved and unspecified addresses are refused at registration and at
every delivery (after resolving the name, to the address checked), unless
LIFECYCLE_WEBHOOK_ALLOW_PRIVATE; plain http only in development."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
import uuid

import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.webhooks import WebhookActivities
from lifecycle.contracts.webhooks import DeliveryRef, WebhookEvent
from lifecycle.db import session_scope
from lifecycle.models import WebhookDelivery, WebhookEndpoint
from lifecycle.settings import Settings
from lifecycle.webhooks import addresses, deliveries
from lifecycle.webhooks.addresses import RefusedAddress, development, pinned_targets, why_refused
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
    reason = err.value.reason.split(";")[0]  # the reason itself, not the ALLOW_PRIVATE hint after it
    assert err.value.field == "url" and why in reason


def test_a_name_resolving_inside_is_refused_and_one_that_does_not_resolve_is_a_warning() -> None:
    with pytest.raises(BadEndpoint, match="product.example resolves to 10.1.2.3, which is a private"):
        check_url("https://product.example/h", ENGINE, resolve=lambda h, p: ["93.184.215.14", "10.1.2.3"])

    def offline(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    [warning] = check_url("https://product.example/h", ENGINE, resolve=offline)
    assert "does not resolve" in warning and "each delivery" in warning
    assert check_url("https://product.example/h", ENGINE, resolve=public) == []


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9000/hooks",
    "http://[::1]:9000/hooks",  # IPv6 loopback (it used to fall to "reserved" first)
    "http://10.0.0.5/h",
    "http://[fd00::1]/h",
    "http://[fec0::1]/h",  # site-local (deprecated): private
    "http://198.18.0.1/h",  # benchmarking: a lab network
    "http://[::ffff:127.0.0.1]:9000/h",
])
def test_allow_private_lets_loopback_and_private_through(url: str) -> None:
    assert check_url(url, ENGINE, allow_private=True, https_only=False) == []


@pytest.mark.parametrize(("url", "why"), [
    ("http://169.254.169.254/", "the cloud metadata service"),
    ("http://169.254.10.1/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fd00:ec2::254]/", "the cloud metadata service"),  # AWS's IPv6 metadata, inside fc00::/7
    ("http://100.100.100.200/", "the cloud metadata service"),  # Alibaba's, inside 100.64/10
    ("http://[64:ff9b::a9fe:a9fe]/", "the cloud metadata service"),  # NAT64 of 169.254.169.254
    ("http://[2002:a9fe:a9fe::1]/", "the cloud metadata service"),  # 6to4 of 169.254.169.254
    ("http://[2001:0:4136:e378:8000:63bf:5601:5601]/", "the cloud metadata service"),  # Teredo, client 169.254.169.254
    ("http://224.0.0.1/", "multicast"),
    ("http://0.0.0.0:9000/", "unspecified"),
    ("http://192.0.2.1/", "documentation"),
    ("http://[2001:db8::1]/", "documentation"),
    ("http://255.255.255.255/", "broadcast"),
])
def test_allow_private_never_lets_link_local_metadata_or_special_blocks_through(url: str, why: str) -> None:
    with pytest.raises(BadEndpoint) as err:
        check_url(url, ENGINE, allow_private=True, https_only=False)
    assert why in err.value.reason


@pytest.mark.parametrize(("url", "carried", "why"), [
    ("http://[::10.0.0.1]/h", "10.0.0.1", "private"),  # IPv4-compatible ::/96
    ("http://[::ffff:10.0.0.1]/h", "10.0.0.1", "private"),  # IPv4-mapped
    ("http://[2002:a00:1::1]/h", "10.0.0.1", "private"),  # 6to4 2002::/16
    ("http://[2002:7f00:1::]/h", "127.0.0.1", "loopback"),
    ("http://[64:ff9b::7f00:1]/h", "127.0.0.1", "loopback"),  # NAT64 64:ff9b::/96
    ("http://[64:ff9b:1::a00:1]/h", "10.0.0.1", "private"),  # local-use NAT64 64:ff9b:1::/48
    ("http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/h", "10.0.0.1", "private"),  # Teredo: ~last 32 bits
])
def test_an_ipv6_address_carrying_an_ipv4_one_is_judged_as_that_ipv4_address(url: str, carried: str, why: str) -> None:
    with pytest.raises(BadEndpoint) as err:
        check_url(url, ENGINE, https_only=False)
    assert carried in err.value.reason and why in err.value.reason


@pytest.mark.parametrize(("address", "allowed"), [
    ("2002:5db8:d70e::1", True),  # 6to4 of a public address
    ("64:ff9b::5db8:d70e", True),  # NAT64 of a public address
    ("2001:0:4136:e378:8000:63bf:a247:28f1", True),  # Teredo, client 93.184.215.14
    ("64:ff9b:1::5db8:d70e", False),  # a local-use translator is inside the network
    ("2606:4700::1111", True),
    ("fec0::1", False),
    ("5f00::1", False),  # SRv6 identifiers
    ("4000::1", False),  # outside the global unicast space 2000::/3
])
def test_what_ipv6_addresses_outside_may_receive(address: str, allowed: bool) -> None:
    assert (why_refused(address, allow_private=False) is None) is allowed


def test_a_url_with_a_user_name_or_password_is_refused_without_echoing_it() -> None:
    for url in ("https://user:hunter2@product.example/h", "https://hunter2@product.example/h"):
        with pytest.raises(BadEndpoint, match="user name or password") as err:
            check_url(url, ENGINE, resolve=public)
        assert "hunter2" not in err.value.reason


@pytest.mark.parametrize("url", [
    "https://product.example:99999/h", "https://product.example:abc/h", "https://product.example:0/h",
    "https://product.example:-1/h", "https://[2606:4700::1111]:70000/h", "https://product.example:８０/h",
])
def test_a_bad_port_is_refused_at_registration(url: str) -> None:
    with pytest.raises(BadEndpoint, match="invalid port") as err:
        check_url(url, ENGINE, resolve=public)
    assert err.value.field == "url" and "1 to 65535" in err.value.reason


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


async def _stored_as(sessions: sessionmaker[Session], delivery_id: int, url: str) -> None:
    """The endpoint's URL as an older release (or a hand-edited row) may have stored it."""
    with session_scope(sessions) as s:
        row = s.get(WebhookDelivery, delivery_id)
        assert row is not None
        endpoint = s.get(WebhookEndpoint, row.endpoint_id)
        assert endpoint is not None
        endpoint.url = url


def _row(sessions: sessionmaker[Session], delivery_id: int) -> WebhookDelivery:
    with sessions() as s:
        row = s.get(WebhookDelivery, delivery_id)
        assert row is not None
        return row


async def local(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


@pytest.mark.parametrize("port", ["99999", "abc", "0"])
async def test_a_stored_url_with_a_bad_port_is_a_recorded_failed_attempt(
    settings: Settings, session_factory: sessionmaker[Session], port: str
) -> None:
    delivery_id, _ = await _one_delivery(session_factory, "http://product.test/hooks")
    await _stored_as(session_factory, delivery_id, f"http://product.test:{port}/hooks")
    acts = WebhookActivities(session_factory, settings, resolve=local)
    with pytest.raises(ApplicationError, match="invalid port"):
        await ActivityEnvironment().run(acts.deliver_webhook, DeliveryRef(delivery_id, ""))
    row = _row(session_factory, delivery_id)
    assert (row.status, row.status_code, row.attempts) == ("pending", None, 1)
    assert row.error and "invalid port" in row.error


async def test_a_stored_url_with_a_password_is_never_posted_and_the_password_never_shown(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    async with receiving() as receiver:
        delivery_id, _ = await _one_delivery(session_factory, f"http://product.test:{receiver.port}/hooks")
        await _stored_as(session_factory, delivery_id, f"http://user:hunter2@product.test:{receiver.port}/hooks")
        acts = WebhookActivities(session_factory, settings, resolve=local)
        with pytest.raises(ApplicationError, match="user name or password") as err:
            await ActivityEnvironment().run(acts.deliver_webhook, DeliveryRef(delivery_id, ""))
        assert "hunter2" not in str(err.value)
        assert receiver.requests == []
        row = _row(session_factory, delivery_id)
        assert row.error and "user name or password" in row.error and "hunter2" not in row.error


async def test_every_resolved_address_is_tried_in_order_until_one_connects(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    """The receiver listens on 127.0.0.1 only: 127.0.0.2, the name's first answer, refuses
    the connection, and the delivery goes to the second (checked) address."""
    async with receiving() as receiver:
        delivery_id, receiver.secrets["/hooks"] = await _one_delivery(
            session_factory, f"http://product.test:{receiver.port}/hooks")

        async def two(host: str, port: int) -> list[str]:
            return ["127.0.0.2", "127.0.0.1"]

        acts = WebhookActivities(session_factory, settings, resolve=two)  # allow_private (conftest)
        result = await ActivityEnvironment().run(acts.deliver_webhook, DeliveryRef(delivery_id, ""))
        assert result.delivered and len(receiver.requests) == 1 and receiver.requests[0].verified
        assert _row(session_factory, delivery_id).status == "delivered"


async def test_one_resolved_address_inside_refuses_the_delivery_whatever_the_others(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    async with receiving() as receiver:
        delivery_id, _ = await _one_delivery(session_factory, f"http://product.test:{receiver.port}/hooks")

        async def mixed(host: str, port: int) -> list[str]:
            return ["93.184.215.14", "127.0.0.1"]

        strict = settings.model_copy(update={"webhook_allow_private": False})
        acts = WebhookActivities(session_factory, strict, resolve=mixed)
        with pytest.raises(ApplicationError, match="resolves to 127.0.0.1, which is a loopback"):
            await ActivityEnvironment().run(acts.deliver_webhook, DeliveryRef(delivery_id, ""))
        assert receiver.requests == []


async def test_a_name_service_that_never_answers_is_a_failed_attempt_within_the_timeout(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    delivery_id, _ = await _one_delivery(session_factory, "http://product.test/hooks")

    async def hanging(host: str, port: int) -> list[str]:
        await asyncio.sleep(3600)
        return []

    quick = settings.model_copy(update={"webhook_timeout_seconds": 0.5})
    acts = WebhookActivities(session_factory, quick, resolve=hanging)
    started = time.monotonic()
    with pytest.raises(ApplicationError, match="did not resolve within 0.5 s"):
        await asyncio.wait_for(ActivityEnvironment().run(acts.deliver_webhook, DeliveryRef(delivery_id, "")), 10)
    assert time.monotonic() - started < 5
    row = _row(session_factory, delivery_id)
    assert row.attempts == 1 and row.error and "did not resolve" in row.error


async def test_the_system_lookup_is_bounded_and_never_blocks_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """getaddrinfo stuck for 2 s: the lookup gives up after 0.3 s, and the loop kept running."""
    def stuck(*args: object, **kwargs: object) -> list[object]:
        time.sleep(2)
        raise OSError("too late")

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    beat = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        with pytest.raises(RefusedAddress, match="did not resolve within 0.3 s"):
            await pinned_targets("https://product.test/h", allow_private=False, timeout=0.3)
    finally:
        beat.cancel()
    assert time.monotonic() - started < 1.5 and ticks >= 5


async def test_a_proxy_in_the_environment_is_never_used(
    settings: Settings, session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP(S)_PROXY set for the worker: the delivery still goes straight to the address
    checked, never through the proxy (which would bypass the check and break TLS)."""
    async with receiving() as receiver, receiving() as proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        delivery_id, receiver.secrets["/hooks"] = await _one_delivery(
            session_factory, f"http://product.test:{receiver.port}/hooks")
        acts = WebhookActivities(session_factory, settings, resolve=local)
        result = await ActivityEnvironment().run(acts.deliver_webhook, DeliveryRef(delivery_id, ""))
        assert result.delivered and proxy.requests == []
        [request] = receiver.requests
        assert request.verified


def test_a_registration_lookup_that_hangs_is_given_up_as_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """The system's resolver stuck (no answer): registration does not wait for it, the name
    is accepted with the warning (each delivery resolves and checks it again)."""
    def stuck(*args: object, **kwargs: object) -> list[object]:
        time.sleep(2)
        raise OSError("too late")

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    monkeypatch.setattr(addresses, "REGISTRATION_DNS_SECONDS", 0.2)
    started = time.monotonic()
    [warning] = check_url("https://product.example/h", ENGINE)
    assert time.monotonic() - started < 1.5
    assert "no answer within 0.2 s" in warning and "each delivery" in warning
