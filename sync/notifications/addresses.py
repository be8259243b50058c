"""Which URLs the service calls for a partner: `https`, and a name that resolves only to public
addresses (never private, loopback, link-local, multicast, reserved or a cloud metadata
address). Checked when an endpoint is registered and again before every attempt, on a fresh
resolution, and the attempt connects to the address checked (no second look-up to rebind).
`PARTNER_WEBHOOKS_ALLOW_PRIVATE=true` lifts both rules, for local demos and tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL = 2000
# Metadata services reachable from cloud instances; most are link-local already, the
# IPv6 one of AWS (fd00:ec2::254) is a unique-local address: refused as private too.
METADATA = frozenset({ipaddress.ip_address("169.254.169.254"),
                      ipaddress.ip_address("fd00:ec2::254"),
                      ipaddress.ip_address("100.100.100.200")})  # Alibaba's (shared CGNAT range)


class UnsafeUrl(ValueError):
    """The URL may not be called; the message says why (safe to show to its partner)."""


@dataclass(frozen=True)
class Target:
    """Where an attempt connects: the checked address, and the name for Host and TLS (SNI)."""

    url: str
    host: str
    port: int
    address: str


def check_shape(url: str, *, allow_private: bool) -> tuple[str, int]:
    """(host, port) of an absolute `https` URL without user information or fragment (`http`
    too when `allow_private`). Raises UnsafeUrl."""
    if len(url) > MAX_URL or any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise UnsafeUrl(f"must be at most {MAX_URL} characters, without spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"not a URL: {exc}") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise UnsafeUrl("must be an https:// URL")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise UnsafeUrl("must name a host, without user or password")
    if parts.fragment:
        raise UnsafeUrl("must not have a #fragment")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def refused_address(address: str) -> str | None:
    """Why this IP address may not be called (None: it may)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA:
        return "a cloud metadata address"
    for name, flag in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                       ("private", ip.is_private), ("multicast", ip.is_multicast),
                       ("reserved", ip.is_reserved), ("unspecified", ip.is_unspecified)):
        if flag:
            return f"a {name} address"
    if not ip.is_global:
        return "not a public address"
    return None


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to now (an IP literal: itself). Raises UnsafeUrl."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrl(f"{host} does not resolve ({exc})") from None
    found = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not found:
        raise UnsafeUrl(f"{host} does not resolve")
    return found


async def check_url(url: str, *, allow_private: bool) -> Target:
    """The URL's target, after a fresh resolution whose every address is public (unless
    `allow_private`). Raises UnsafeUrl."""
    host, port = check_shape(url, allow_private=allow_private)
    addresses = await resolve(host, port)
    if not allow_private:
        for address in addresses:
            why = refused_address(address)
            if why is not None:
                raise UnsafeUrl(f"{host} resolves to {address}, {why}")
    return Target(url=url, host=host, port=port, address=addresses[0])
