"""The product's endpoints: register (with a new signing secret, shown once), list, remove.

A URL must be http(s) with a host, a port in 1-65535 and no ``user:pass@`` (https outside
development), must not point at the engine itself (its ``public_url``): a delivery to
ourselves would be a loop, never a receiver; and its host must not be or resolve to an
address inside the network (``lifecycle.webhooks.addresses``). A name that does not resolve
now (an offline machine) is accepted with a warning: every delivery resolves and checks it
again.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.contracts.webhooks import WEBHOOK_EVENT_TYPES
from lifecycle.models import WebhookEndpoint
from lifecycle.settings import Settings
from lifecycle.webhooks.addresses import (
    DEFAULT_PORTS,
    BadUrl,
    RefusedAddress,
    check_addresses,
    development,
    literal_ip,
    parse_url,
    resolve_now,
)

SECRET_PREFIX = "whsec_"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


class BadEndpoint(ValueError):
    """The endpoint cannot be registered; ``field`` is the input at fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class NewEndpoint:
    endpoint: WebhookEndpoint
    secret: str  # shown once, to the one who registered it
    warnings: list[str] = field(default_factory=list)


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 24 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _host_key(host: str) -> str:
    """Names and addresses of this machine compare equal (127.0.0.1, localhost, ::1, 0.0.0.0)."""
    host = host.lower().rstrip(".")
    if host in LOOPBACK_NAMES:
        return "loopback"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    return "loopback" if ip.is_loopback or ip.is_unspecified else str(ip)


def _host_port(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url)
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return _host_key(parts.hostname), port


def check_url(
    url: str, engine_url: str, *, allow_private: bool = False, https_only: bool = True,
    resolve: Callable[[str, int], list[str]] = resolve_now,
) -> list[str]:
    """Raise :class:`BadEndpoint` unless ``url`` can receive deliveries; the warnings
    (a name that does not resolve now)."""
    try:
        parsed = parse_url(url)
    except BadUrl as exc:
        raise BadEndpoint("url", str(exc)) from None
    if https_only and parsed.scheme != "https":
        raise BadEndpoint("url", f"must be https:// outside development, got {url!r}")
    if _host_port(url) == _host_port(engine_url):
        raise BadEndpoint(
            "url", f"points at the engine itself ({engine_url}); give the product's receiver URL"
        )
    host = parsed.host
    ip = literal_ip(host)
    try:
        if ip is not None:
            check_addresses(str(ip), [str(ip)], allow_private=allow_private)
            return []
        try:
            addresses = resolve(host, parsed.port)
        except OSError as exc:
            return [f"{host} does not resolve from here ({exc}); each delivery resolves and checks it again"]
        check_addresses(host, addresses, allow_private=allow_private)
    except RefusedAddress as exc:
        raise BadEndpoint("url", str(exc)) from None
    return []


def check_events(events: Iterable[str]) -> list[str]:
    """The event types, de-duplicated in the order given; unknown ones raise :class:`BadEndpoint`."""
    chosen = list(dict.fromkeys(e.strip() for e in events if e.strip()))
    if not chosen:
        raise BadEndpoint("events", f"name at least one of {', '.join(WEBHOOK_EVENT_TYPES)}")
    unknown = [e for e in chosen if e not in WEBHOOK_EVENT_TYPES]
    if unknown:
        raise BadEndpoint(
            "events", f"unknown event type(s) {', '.join(unknown)}; expected {', '.join(WEBHOOK_EVENT_TYPES)}"
        )
    return chosen


def add_endpoint(
    session: Session, url: str, events: Iterable[str], *, engine_url: str, description: str = "",
    allow_private: bool = False, https_only: bool = True,
    resolve: Callable[[str, int], list[str]] = resolve_now,
) -> NewEndpoint:
    """Register an endpoint (the caller commits); its secret is in the answer, once.
    ``allow_private`` and ``https_only`` come from :func:`url_rules` (the settings)."""
    warnings = check_url(url, engine_url, allow_private=allow_private, https_only=https_only, resolve=resolve)
    chosen = check_events(events)
    secret = new_secret()
    endpoint = WebhookEndpoint(
        id="whe_" + secrets.token_hex(8),
        url=url.strip(),
        events=chosen,
        secret=secret,
        description=description[:200],
        created_at=dt.datetime.now(dt.UTC),
    )
    session.add(endpoint)
    session.flush()
    return NewEndpoint(endpoint, secret, warnings)


def url_rules(settings: Settings) -> dict[str, bool]:
    """``allow_private`` and ``https_only`` for :func:`add_endpoint`, from the settings."""
    return {"allow_private": settings.webhook_allow_private, "https_only": not development(settings)}


def list_endpoints(session: Session) -> list[WebhookEndpoint]:
    """Every endpoint not removed, oldest first (disabled ones included: they show as such)."""
    return list(
        session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.removed_at.is_(None))
            .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        )
    )


def get_endpoint(session: Session, endpoint_id: str) -> WebhookEndpoint | None:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    return endpoint if endpoint is not None and endpoint.removed_at is None else None


def remove_endpoint(session: Session, endpoint_id: str) -> bool:
    """Stop delivering to the endpoint (kept for the log); False if there is none."""
    endpoint = get_endpoint(session, endpoint_id)
    if endpoint is None:
        return False
    endpoint.removed_at = dt.datetime.now(dt.UTC)
    return True


def enable_endpoint(session: Session, endpoint_id: str) -> bool:
    """Deliver to a disabled endpoint again (new events; redeliver the missed ones by id)."""
    endpoint = get_endpoint(session, endpoint_id)
    if endpoint is None:
        return False
    endpoint.disabled_at = None
    endpoint.disabled_reason = None
    return True


def subscribers(session: Session, event_type: str) -> list[WebhookEndpoint]:
    """The enabled endpoints that take ``event_type``, in a stable order."""
    return [e for e in list_endpoints(session) if e.disabled_at is None and event_type in e.events]
