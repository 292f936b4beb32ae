"""Outbound calls to addresses a caller chose: resolve once, refuse what is not public, connect to that.

Two kinds of URL reach KOM from outside: the Saleor API URL at registration (and the JWKS
refetches of that Saleor later), and a provider base-URL override typed on the settings
page. Unchecked, either lets a caller make KOM open connections into its own network
(cloud metadata on 169.254.169.254 or 100.100.100.200, Redis on 127.0.0.1:6379). So:

- an address is acceptable when it is globally routable (``ip.is_global``, not multicast)
  and, for IPv6, embeds no IPv4 address that is not (mapped, 6to4, NAT64, compatible and
  translated forms, Teredo) — or when it lies in a network the operator allowed with
  ``KOM_ALLOWED_PRIVATE_NETWORKS`` (the tests and the sandbox allow 127.0.0.0/8);
- ``Egress.check`` resolves a URL's host once and refuses it unless every address is
  acceptable; ``Egress.client`` then connects only to those addresses, while the URL, the
  ``Host`` header and TLS (SNI and the certificate check) keep the name. A DNS answer that
  changes after the check (rebinding) is never consulted.

A refusal is ``EgressRefused``, an ``httpx.ConnectError`` (so code that handles "could not
connect" handles it too) whose ``reason`` is safe to show: it never carries resolver or
TLS error text.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import httpcore
import httpx
import idna

if TYPE_CHECKING:
    from plugin.settings import Settings


class _HasSettings(Protocol):
    """The part of the process's services the egress policy lives in."""

    @property
    def settings(self) -> Settings: ...

    @property
    def extra(self) -> dict[str, Any]: ...


__all__ = [
    "Address",
    "Egress",
    "EgressRefused",
    "Resolver",
    "Target",
    "egress",
    "embedded_ipv4",
    "parse_networks",
    "system_resolver",
]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[Address]]]

RESOLVE_TIMEOUT = 5.0
_EXTRA_KEY = "kom.egress"

# IPv6 prefixes whose low 32 bits are an IPv4 address that the packet ends up at.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
# IANA's special-purpose ranges that are not globally reachable, for the Python versions
# whose ``is_global`` misses some (3.11 knows only 192.0.0.0/29 of 192.0.0.0/24, say).
_NOT_GLOBAL = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "3fff::/20",
        "5f00::/16",
        "fc00::/7",
        "fe80::/10",
    )
)
# Deprecated "IPv4-compatible" (::a.b.c.d) and SIIT "IPv4-translated" (::ffff:0:a.b.c.d):
# nothing legitimate uses them, and stacks differ on where they go.
_REFUSED_V6 = (ipaddress.IPv6Network("::/96"), ipaddress.IPv6Network("::ffff:0:0:0/96"))


class EgressRefused(httpx.ConnectError):
    """KOM will not connect there. ``reason`` is a sentence for the caller; ``kind`` says why."""

    def __init__(self, reason: str, kind: Literal["invalid", "unresolvable", "private"]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


@dataclass(frozen=True)
class Target:
    """A checked URL: its ASCII host (IDNA-encoded) and the addresses KOM may connect to."""

    url: str
    host: str
    port: int
    addresses: tuple[Address, ...]


def parse_networks(text: str) -> tuple[Network, ...]:
    """``"127.0.0.0/8, ::1"`` -> networks; ValueError names the entry that is not one."""
    networks: list[Network] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not an IP network (e.g. 127.0.0.0/8)") from exc
    return tuple(networks)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in network for network in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _public(ip: Address) -> bool:
    if ip.is_multicast or not ip.is_global:
        return False
    if any(ip.version == net.version and ip in net for net in _NOT_GLOBAL):
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local or ip.teredo is not None or any(ip in net for net in _REFUSED_V6):
            return False
        inner = embedded_ipv4(ip)
        if inner is not None:
            return _public(inner)
    return True


_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _valid_hostname(host: str) -> bool:
    """DNS syntax (labels of 1–63 letters, digits, "-", "_"; 253 in all); ``xn--`` labels must decode."""
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253:
        return False
    for label in name.split("."):
        if not _LABEL.fullmatch(label):
            return False
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError, ValueError):
                return False
    return True


async def system_resolver(host: str, port: int) -> list[Address]:
    """The addresses the operating system's resolver gives ``host`` (A and AAAA)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(RESOLVE_TIMEOUT):
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


@dataclass(frozen=True)
class Egress:
    """The address policy of one process, with the resolver it checks names with (tests inject one)."""

    allowed_networks: tuple[Network, ...] = ()
    resolver: Resolver = system_resolver
    # Tests that serve TLS on loopback trust their own certificate; None = the system's CAs.
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)

    def acceptable(self, ip: Address) -> bool:
        """Globally routable, or inside a network the operator allowed."""
        if any(ip.version == network.version and ip in network for network in self.allowed_networks):
            return True
        return _public(ip)

    def operator_allowed(self, addresses: Iterable[Address]) -> bool:
        """Every address is in KOM_ALLOWED_PRIVATE_NETWORKS (where plain http is tolerated)."""
        found = list(addresses)
        return bool(found) and all(
            any(ip.version == net.version and ip in net for net in self.allowed_networks) for ip in found
        )

    async def check(self, url: str) -> Target:
        """Resolve ``url``'s host once; EgressRefused unless every address is acceptable."""
        try:
            parsed = httpx.URL(url)
            host = parsed.raw_host.decode("ascii").lower()
        except (httpx.InvalidURL, UnicodeError, ValueError):
            raise EgressRefused("The URL's host name is not a valid (IDNA) host name.", "invalid") from None
        if parsed.scheme not in ("http", "https") or not host:
            raise EgressRefused("The URL must be an absolute http(s) URL.", "invalid")
        if not _is_ip(host) and not _valid_hostname(host):
            raise EgressRefused("The URL's host name is not a valid (IDNA) host name.", "invalid")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        addresses = await self._addresses(host, port)
        if not addresses:
            raise EgressRefused(f"The host name {host} does not resolve.", "unresolvable")
        if not all(self.acceptable(ip) for ip in addresses):
            raise EgressRefused(
                f"{host} is not on a public address; KOM does not connect to loopback, private, "
                "link-local or shared networks (KOM_ALLOWED_PRIVATE_NETWORKS lists exceptions).",
                "private",
            )
        return Target(url=str(parsed), host=host, port=port, addresses=tuple(addresses))

    async def _addresses(self, host: str, port: int) -> list[Address]:
        try:
            return [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            pass
        try:
            return list(dict.fromkeys(await self.resolver(host, port)))
        except (OSError, TimeoutError, UnicodeError, ValueError):
            # The resolver's own message (and the resolver we use) are nobody's business.
            raise EgressRefused(f"The host name {host} does not resolve.", "unresolvable") from None

    def client(self, *targets: Target, timeout: float | httpx.Timeout = 10.0) -> httpx.AsyncClient:
        """An HTTP client that connects to the targets' checked addresses only (close it after use)."""
        pins = {target.host: target.addresses for target in targets}
        return httpx.AsyncClient(
            transport=_PinnedTransport(pins, self.ssl_context),
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,  # a proxy from the environment would connect wherever it likes
        )


def egress(services: _HasSettings) -> Egress:
    """The process's Egress (built from the settings once; a test may put its own in ``extra``)."""
    found = services.extra.get(_EXTRA_KEY)
    if isinstance(found, Egress):
        return found
    built = Egress(allowed_networks=parse_networks(services.settings.allowed_private_networks))
    services.extra[_EXTRA_KEY] = built
    return built


def install(services: _HasSettings, policy: Egress) -> None:
    """Use ``policy`` for this process (tests: an injected resolver, loopback allowed)."""
    services.extra[_EXTRA_KEY] = policy


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting a checked host name to its checked addresses only."""

    def __init__(self, pins: Mapping[str, tuple[Address, ...]]) -> None:
        self._pins = dict(pins)
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = self._pins.get(host.lower().strip("[]"))
        if not addresses:
            raise EgressRefused(f"KOM connects only to hosts it checked, and {host} was not.", "private")
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("KOM does not connect to unix sockets here.", "private")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request and error mapping unchanged) on the pinned backend."""

    def __init__(self, pins: Mapping[str, tuple[Address, ...]], ssl_context: ssl.SSLContext | None) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
            max_connections=10,
            max_keepalive_connections=5,
            keepalive_expiry=5.0,
            network_backend=_PinnedBackend(pins),
        )
