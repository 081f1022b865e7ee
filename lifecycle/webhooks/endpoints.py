"""The product's endpoints: register (with a new signing secret, shown once), list, remove.

A URL must be http(s) with a host, and must not point at the engine itself (its
``public_url``): a delivery to ourselves would be a loop, never a receiver.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.contracts.webhooks import WEBHOOK_EVENT_TYPES
from lifecycle.models import WebhookEndpoint

SECRET_PREFIX = "whsec_"
DEFAULT_PORTS = {"http": 80, "https": 443}
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


def check_url(url: str, engine_url: str) -> None:
    """Raise :class:`BadEndpoint` unless ``url`` can receive deliveries."""
    parts = urlsplit(url.strip())
    if parts.scheme not in DEFAULT_PORTS:
        raise BadEndpoint("url", f"must be an http:// or https:// URL, got {url!r}")
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        raise BadEndpoint("url", f"has an invalid port: {url!r}") from None
    if not parts.hostname:
        raise BadEndpoint("url", f"has no host: {url!r}")
    if _host_port(url) == _host_port(engine_url):
        raise BadEndpoint(
            "url", f"points at the engine itself ({engine_url}); give the product's receiver URL"
        )


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
    session: Session, url: str, events: Iterable[str], *, engine_url: str, description: str = ""
) -> NewEndpoint:
    """Register an endpoint (the caller commits); its secret is in the answer, once."""
    check_url(url, engine_url)
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
    return NewEndpoint(endpoint, secret)


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
