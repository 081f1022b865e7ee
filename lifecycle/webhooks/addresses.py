"""Where a delivery to the product may go: never inside (SSRF).

A product endpoint's URL is read once (:func:`parse_url`: http(s), a host, a port in
1-65535, no ``user:pass@``); its name is resolved (bounded by the delivery's timeout, off
the event loop) and every address it gives is judged against :data:`SPECIAL` — IANA's IPv4
and IPv6 special-purpose address registries, plus multicast and the deprecated site-local
and IPv4-compatible blocks. An IPv6 address that carries an IPv4 one (IPv4-mapped,
IPv4-compatible, 6to4, NAT64, Teredo) is judged as that IPv4 address.

- Always refused: unspecified / "this network", multicast, broadcast, reserved,
  documentation, discard and IETF protocol blocks, link-local (169.254.0.0/16, fe80::/10)
  and the cloud metadata services (169.254.169.254, fd00:ec2::254, 100.100.100.200).
- Refused unless ``LIFECYCLE_WEBHOOK_ALLOW_PRIVATE=true`` (a product on the same private
  network): loopback (127/8, ``::1``), private (10/8, 172.16/12, 192.168/16, 100.64/10,
  198.18/15, IPv6 ULA fc00::/7, site-local fec0::/10, the local-use NAT64 64:ff9b:1::/48).

A name is refused if ANY of its addresses is refused (a name that mixes inside and outside
answers is a rebinding attempt or a mistake); otherwise the delivery connects to its
addresses in the resolver's order, each checked, the first that accepts a connection (the
URL's host becomes that IP; the ``Host`` header and TLS SNI keep the name), so a name that
resolves elsewhere a second time (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from lifecycle.settings import Settings, production_reasons

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> the addresses it resolves to; raises OSError when it does not resolve
Resolver = Callable[[str, int], Awaitable[list[str]]]
DEFAULT_PORTS = {"http": 80, "https": 443}


class RefusedAddress(ValueError):
    """The URL's host is (or resolves to) an address deliveries may not go to."""


class BadUrl(ValueError):
    """The URL itself cannot be delivered to (scheme, user info, port, host)."""


# -- the table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    network: IPNetwork
    reason: str  # "a loopback address", … (what the refusal says)
    private: bool = False  # allowed with LIFECYCLE_WEBHOOK_ALLOW_PRIVATE
    carries_ipv4: str | None = None  # an IPv6 block whose addresses embed an IPv4 one: its name


def _block(cidr: str, reason: str, *, private: bool = False, carries_ipv4: str | None = None) -> Block:
    return Block(ipaddress.ip_network(cidr), reason, private, carries_ipv4)


LOOPBACK, PRIVATE, LINK_LOCAL = "a loopback address", "a private address", "a link-local address"
METADATA = "the cloud metadata service"
DOCUMENTATION, PROTOCOL = "a documentation address", "an IETF protocol assignment, not a host"

# IANA IPv4 Special-Purpose Address Registry (iana-ipv4-special-registry, RFC 6890 and later),
# every block not "globally reachable", plus multicast (224/4) and the metadata addresses.
SPECIAL_IPV4 = (
    _block("0.0.0.0/8", "the unspecified address (\"this network\")"),
    _block("10.0.0.0/8", PRIVATE, private=True),
    _block("100.64.0.0/10", PRIVATE + " (shared address space, RFC 6598)", private=True),
    _block("100.100.100.200/32", METADATA + " (Alibaba Cloud)"),
    _block("127.0.0.0/8", LOOPBACK, private=True),
    _block("169.254.0.0/16", LINK_LOCAL + " (cloud metadata services live there)"),
    _block("169.254.169.254/32", LINK_LOCAL + ": " + METADATA),
    _block("172.16.0.0/12", PRIVATE, private=True),
    _block("192.0.0.0/24", PROTOCOL),
    _block("192.0.2.0/24", DOCUMENTATION),
    _block("192.88.99.0/24", "a 6to4 relay anycast address (deprecated, RFC 7526)"),
    _block("192.168.0.0/16", PRIVATE, private=True),
    _block("198.18.0.0/15", PRIVATE + " (benchmarking, RFC 2544)", private=True),
    _block("198.51.100.0/24", DOCUMENTATION),
    _block("203.0.113.0/24", DOCUMENTATION),
    _block("224.0.0.0/4", "a multicast address"),
    _block("240.0.0.0/4", "a reserved address"),
    _block("255.255.255.255/32", "the limited broadcast address"),
)
# IANA IPv6 Special-Purpose Address Registry, plus multicast (ff00::/8), site-local
# (fec0::/10, deprecated by RFC 3879), IPv4-compatible (::/96, deprecated by RFC 4291) and the
# AWS metadata address. Anything outside the global unicast space 2000::/3 not listed here
# is unassigned: refused.
SPECIAL_IPV6 = (
    _block("::/128", "the unspecified address"),
    _block("::1/128", LOOPBACK, private=True),
    _block("::/96", "an IPv4-compatible address", carries_ipv4="IPv4-compatible"),
    _block("::ffff:0:0/96", "an IPv4-mapped address", carries_ipv4="IPv4-mapped"),
    _block("64:ff9b::/96", "a NAT64 address", carries_ipv4="NAT64"),
    _block("64:ff9b:1::/48", PRIVATE + " (local-use NAT64, RFC 8215)", private=True, carries_ipv4="NAT64"),
    _block("100::/64", "a discard-only address"),
    _block("2001::/23", PROTOCOL),
    _block("2001::/32", "a Teredo address", carries_ipv4="Teredo"),
    _block("2001:db8::/32", DOCUMENTATION),
    _block("2002::/16", "a 6to4 address", carries_ipv4="6to4"),
    _block("3fff::/20", DOCUMENTATION),
    _block("5f00::/16", "a segment routing (SRv6) identifier"),
    _block("fc00::/7", PRIVATE + " (unique local)", private=True),
    _block("fd00:ec2::254/128", METADATA + " (AWS, IPv6)"),
    _block("fe80::/10", LINK_LOCAL),
    _block("fec0::/10", PRIVATE + " (site-local, deprecated)", private=True),
    _block("ff00::/8", "a multicast address"),
)
SPECIAL: tuple[Block, ...] = SPECIAL_IPV4 + SPECIAL_IPV6
GLOBAL_UNICAST_IPV6 = ipaddress.ip_network("2000::/3")
_LONGEST_FIRST = sorted(SPECIAL, key=lambda b: -b.network.prefixlen)


def block_of(ip: IPAddress) -> Block | None:
    """The most specific block of :data:`SPECIAL` that holds ``ip`` (None: an ordinary address)."""
    for block in _LONGEST_FIRST:
        if ip.version == block.network.version and ip in block.network:
            return block
    return None


def embedded_ipv4(ip: ipaddress.IPv6Address, kind: str) -> ipaddress.IPv4Address:
    """The IPv4 address an IPv6 address of ``kind`` carries (Teredo: its client's, the
    complement of the last 32 bits)."""
    if kind == "6to4":
        assert ip.sixtofour is not None
        return ip.sixtofour
    if kind == "Teredo":
        assert ip.teredo is not None
        return ip.teredo[1]
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)  # mapped, compatible, NAT64 (RFC 6052 /96)


def why_refused(address: str | IPAddress, *, allow_private: bool) -> str | None:
    """Why a delivery may not go to ``address`` (None: it may)."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        ip = ipaddress.IPv6Address(int(ip))
    block = block_of(ip)
    if block is not None and block.carries_ipv4 and isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip, block.carries_ipv4)
        reason = why_refused(inner, allow_private=allow_private)
        if reason is not None:
            return f"{_article(block.carries_ipv4)} address for {inner}, {reason}"
        if block.private and not allow_private:
            return block.reason
        return None
    if block is not None:
        return None if block.private and allow_private else block.reason
    if isinstance(ip, ipaddress.IPv6Address) and ip not in GLOBAL_UNICAST_IPV6:
        return "a reserved (unassigned) address"
    if not ip.is_global:  # a block IANA added after this table: refused until it is listed
        return "an address that is not globally reachable"
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
            shown = f"{host} is" if host == address else f"{host} resolves to {address}, which is"
            raise RefusedAddress(
                f"{shown} {reason}; deliveries never go inside the network"
                + ("" if allow_private else
                   " (LIFECYCLE_WEBHOOK_ALLOW_PRIVATE=true allows private and loopback addresses)")
            )


def _article(word: str) -> str:
    return ("an " if word[0] in "AEIOU" else "a ") + word


# -- the URL ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedUrl:
    scheme: str
    host: str  # lower case, without brackets
    port: int  # the URL's, or the scheme's default
    explicit_port: bool
    path: str
    query: str


def _raw_port(netloc: str) -> str | None:
    hostport = netloc.rsplit("@", 1)[-1]
    if hostport.startswith("["):
        _, _, after = hostport.partition("]")
        return after[1:] if after.startswith(":") else None
    return hostport.rpartition(":")[2] if ":" in hostport else None


def parse_url(url: str) -> ParsedUrl:
    """The parts of an endpoint URL deliveries use; raises :class:`BadUrl` (a message that
    never repeats a password) for anything else than http(s)://host[:port]/…"""
    parts = urlsplit(url.strip())
    if parts.scheme not in DEFAULT_PORTS:
        raise BadUrl(f"must be an http:// or https:// URL, got {url!r}")
    if "@" in parts.netloc:
        raise BadUrl("must not carry a user name or password (user:pass@host): the product checks "
                     "the webhook signature instead")
    raw = _raw_port(parts.netloc) or ""
    try:
        port = parts.port
    except ValueError:
        port = None
    if raw and not (raw.isascii() and raw.isdigit() and port is not None and 0 < port <= 65535):
        raise BadUrl(f"has an invalid port {raw!r}: a number from 1 to 65535")
    if not parts.hostname:
        raise BadUrl(f"has no host: {url!r}")
    return ParsedUrl(parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme], bool(raw),
                     parts.path, parts.query)


# -- resolving ------------------------------------------------------------------------------


def _addresses(infos: list[tuple[object, ...]]) -> list[str]:
    return list(dict.fromkeys(str(info[4][0]) for info in infos))  # type: ignore[index]


async def system_resolve(host: str, port: int) -> list[str]:
    """The operating system's answer for ``host``, in its order (getaddrinfo in the loop's
    executor: the event loop never waits on it)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return _addresses(list(infos))


async def resolve_within(resolve: Resolver, host: str, port: int, timeout: float) -> list[str]:
    """``resolve(host, port)`` bounded by ``timeout`` seconds; a slow name service is a
    :class:`RefusedAddress` like a name that does not resolve."""
    try:
        return await asyncio.wait_for(resolve(host, port), timeout)
    except TimeoutError:
        raise RefusedAddress(f"{host} did not resolve within {timeout:g} s") from None
    except OSError as exc:
        raise RefusedAddress(f"{host} does not resolve: {exc}") from None


_REGISTRATION_LOOKUPS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")
REGISTRATION_DNS_SECONDS = 5.0


def resolve_now(host: str, port: int) -> list[str]:
    """The same answer from synchronous code (registration runs in a worker thread), given
    up after :data:`REGISTRATION_DNS_SECONDS` (an OSError, like a name that does not resolve)."""
    future = _REGISTRATION_LOOKUPS.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        return _addresses(list(future.result(timeout=REGISTRATION_DNS_SECONDS)))
    except FutureTimeout:
        raise OSError(f"no answer within {REGISTRATION_DNS_SECONDS:g} s") from None


def development(settings: Settings) -> bool:
    """Development by the one rule (lifecycle.settings.production_reasons): only then may an
    endpoint be plain http://."""
    return not production_reasons(settings)


# -- the targets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where one delivery connects: ``url`` with the checked IP as host, and the name."""

    url: str
    host_header: str
    sni_hostname: str | None


async def pinned_targets(
    url: str, *, allow_private: bool, timeout: float, resolve: Resolver = system_resolve
) -> list[Target]:
    """Resolve ``url``'s host once (within ``timeout``), check every address, and aim at
    each, in the resolver's order.

    Raises :class:`BadUrl` (the URL) or :class:`RefusedAddress` (a refused, unresolvable
    or slow name)."""
    parsed = parse_url(url)
    ip = literal_ip(parsed.host)
    addresses = [str(ip)] if ip is not None else await resolve_within(resolve, parsed.host, parsed.port, timeout)
    check_addresses(parsed.host, addresses, allow_private=allow_private)
    shown_host = f"[{parsed.host}]" if ip is not None and ip.version == 6 else parsed.host
    host_header = f"{shown_host}:{parsed.port}" if parsed.explicit_port else shown_host
    targets = []
    for address in addresses:
        chosen = ipaddress.ip_address(address)
        shown = f"[{chosen}]" if chosen.version == 6 else str(chosen)
        netloc = f"{shown}:{parsed.port}" if parsed.explicit_port else shown
        targets.append(Target(
            url=urlunsplit((parsed.scheme, netloc, parsed.path, parsed.query, "")),
            host_header=host_header,
            sni_hostname=parsed.host if parsed.scheme == "https" and ip is None else None,
        ))
    return targets


def without_userinfo(url: str) -> str:
    """``url`` as it may be shown (an error, a log line): any ``user:pass@`` replaced by ``***@``."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[-1]))
