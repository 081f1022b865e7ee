"""Where a delivery to the product may go: never inside (SSRF).

A product endpoint's name is resolved and every address it gives is checked: loopback,
link-local (169.254.169.254, the cloud metadata service), private (10/8, 172.16/12,
192.168/16, 100.64/10, IPv6 ULA fc00::/7), multicast, reserved and unspecified addresses
are refused, IPv4-mapped IPv6 (``::ffff:10.0.0.1``) as the IPv4 address it carries. The
check runs at registration and again at every delivery, and the delivery connects to the
address that was checked (the URL's host becomes that IP; the ``Host`` header and TLS SNI
keep the name), so a name that resolves elsewhere a second time (DNS rebinding) cannot
slip through. ``LIFECYCLE_WEBHOOK_ALLOW_PRIVATE=true`` lets private and loopback addresses
through, for a product on the same private network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from lifecycle.settings import Settings, production_reasons

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses it resolves to; raises OSError when it does not resolve
Resolver = Callable[[str, int], Awaitable[list[str]]]


class RefusedAddress(ValueError):
    """The URL's host is (or resolves to) an address deliveries may not go to."""


async def system_resolve(host: str, port: int) -> list[str]:
    """The operating system's answer for ``host`` (getaddrinfo off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def resolve_now(host: str, port: int) -> list[str]:
    """The same answer from synchronous code (registration runs in a worker thread)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def why_refused(address: str | IPAddress, *, allow_private: bool) -> str | None:
    """Why a delivery may not go to ``address`` (None: it may)."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # never, whatever the setting: nobody listens there, or everybody does
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_link_local:
        return "a link-local address (e.g. the cloud metadata service)"
    if ip.is_reserved:
        return "a reserved address"
    if allow_private:
        return None
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_private or not ip.is_global:
        return "a private address"
    return None


def literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_addresses(host: str, addresses: list[str], *, allow_private: bool) -> None:
    """Raise :class:`RefusedAddress` if any address of ``host`` is refused (one bad answer is enough)."""
    if not addresses:
        raise RefusedAddress(f"{host} resolves to no address")
    for address in addresses:
        reason = why_refused(address, allow_private=allow_private)
        if reason:
            shown = host if host == address else f"{host} resolves to {address}, which is"
            raise RefusedAddress(
                f"{shown} {reason}; deliveries never go inside the network"
                + ("" if allow_private else
                   " (LIFECYCLE_WEBHOOK_ALLOW_PRIVATE=true allows private and loopback addresses)")
            )


def development(settings: Settings) -> bool:
    """Development by the one rule (lifecycle.settings.production_reasons): only then may an
    endpoint be plain http://."""
    return not production_reasons(settings)


@dataclass(frozen=True)
class Target:
    """Where one delivery connects: ``url`` with the checked IP as host, and the name."""

    url: str
    host_header: str
    sni_hostname: str | None


async def pinned_target(url: str, *, allow_private: bool, resolve: Resolver = system_resolve) -> Target:
    """Resolve ``url``'s host once, check every address, and aim at the first one.

    Raises :class:`RefusedAddress` (a refused or unresolvable name)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    ip = literal_ip(host)
    if ip is not None:
        addresses = [str(ip)]
    else:
        try:
            addresses = await resolve(host, port)
        except OSError as exc:
            raise RefusedAddress(f"{host} does not resolve: {exc}") from None
    check_addresses(host, addresses, allow_private=allow_private)
    chosen = ipaddress.ip_address(addresses[0])
    shown = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    netloc = shown if parts.port is None else f"{shown}:{parts.port}"
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return Target(
        url=urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")),
        host_header=host_header,
        sni_hostname=host if parts.scheme == "https" and ip is None else None,
    )
