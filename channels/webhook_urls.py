"""Which webhook URLs Herald will call: the guard against server-side request forgery.

A URL must be ``https`` (``http`` only for a loopback receiver in sandbox mode), carry no
credentials, and its host must resolve only to public addresses: private, loopback, link-local
(the cloud metadata service at 169.254.169.254), multicast, reserved and unspecified addresses
are refused, except loopback in sandbox mode. The check runs when an endpoint is registered and
again on every send, where :class:`GuardedResolver` filters what aiohttp connects to, so a name
that starts resolving to an inside address later (DNS rebinding) is refused too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

MAX_URL_CHARS = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str, int], Awaitable[Sequence[str]]]


class UnsafeUrlError(ValueError):
    """The URL may not be called; the message says why (it names no secret)."""


@dataclass(frozen=True)
class UrlPolicy:
    # Sandbox mode: a receiver on this machine (loopback, plain http too) is allowed.
    allow_loopback: bool = False


def why_refused(address: IPAddress, policy: UrlPolicy) -> str | None:
    """What kind of inside address ``address`` is, or None when Herald may call it."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return None if policy.allow_loopback else "a loopback address"
    for refused, kind in (
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a public address"),
    ):
        if refused:
            return kind
    return None


def parse_url(url: str, policy: UrlPolicy) -> SplitResult:
    """The URL's parts, if its form is acceptable (the host is checked by :func:`check_url`)."""
    if len(url) > MAX_URL_CHARS:
        raise UnsafeUrlError(f"at most {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise UnsafeUrlError("not a valid URL") from None
    if parts.scheme not in ("https", "http"):
        raise UnsafeUrlError("must be an https:// URL")
    if not parts.hostname:
        raise UnsafeUrlError("has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrlError("must not carry credentials (put them in the secret instead)")
    if parts.fragment:
        raise UnsafeUrlError("must not have a #fragment")
    if parts.scheme == "http" and not policy.allow_loopback:
        raise UnsafeUrlError("must be an https:// URL (http only on loopback in sandbox mode)")
    return parts


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


async def check_url(url: str, policy: UrlPolicy, resolve: Resolve = system_resolve) -> str:
    """Refuse (``UnsafeUrlError``) a URL Herald must not call; the URL as given otherwise."""
    parts = parse_url(url, policy)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    literal = _literal(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            found = await resolve(host, port)
        except OSError:
            raise UnsafeUrlError(f"the host {host} does not resolve") from None
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
        if not addresses:
            raise UnsafeUrlError(f"the host {host} does not resolve")
    for address in addresses:
        kind = why_refused(address, policy)
        if kind is not None:
            raise UnsafeUrlError(f"the host {host} resolves to {address}, {kind}")
    if parts.scheme == "http" and not all(_is_loopback(a) for a in addresses):
        raise UnsafeUrlError("must be an https:// URL (http only on loopback in sandbox mode)")
    return url


def _is_loopback(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, minus the addresses :func:`why_refused` refuses: what a send connects
    to is what was checked (no window between the check and the connection)."""

    def __init__(self, policy: UrlPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [
            r for r in results if why_refused(ipaddress.ip_address(r["host"]), self._policy) is None
        ]
        if not allowed:
            refused = results[0]["host"] if results else "nothing"
            raise OSError(f"the host {host} resolves to {refused}, which Herald may not call")
        return allowed

    async def close(self) -> None:
        await self._inner.close()
