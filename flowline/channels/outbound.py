"""SSRF protection for every outbound connection a flow or a workspace's settings can aim:
webhooks, call_api, custom elements, message providers (Twilio, FCM, SMTP) and export
destinations.

A flow author must not reach the machines behind Flowline (cloud metadata at 169.254.169.254,
the database, the Temporal frontend, other tenants' services). Every address a host name
resolves to must be public (not loopback, private, link-local, multicast, reserved or
unspecified, also when IPv4-mapped in IPv6).

The check and the connection are one step, so DNS rebinding (a name that answers a public
address to the check and a private one to the connection) cannot slip through: the guard
resolves the name once, checks every address of that answer, and opens the TCP connection to
one of exactly those addresses; nothing resolves the name again. For HTTP this happens in the
network backend of the client's connection pool (``GuardedBackend`` under ``GuardedTransport``),
below httpx: the URL, the ``Host`` header, TLS SNI and certificate verification all keep the
original host name, only the socket goes to the checked IP. SMTP connects through
``OutboundGuard.connect`` and hands aiosmtplib the connected socket (TLS still verified for the
host name). A pooled keep-alive connection is reused for its host only, and it was checked when
it was opened.

Redirects are not followed by these clients; a caller that follows one anyway sends each hop
through the same transport, so each new connection is checked. ``allow_private`` turns the guard
off: the embedded stack of ``cli.py run`` does, so flows can call receivers on the developer's
machine, and so do tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Iterable

import anyio
import httpcore
import httpx

from flowline import tracing


class OutboundRefused(httpx.TransportError):
    """The request would reach a non-public address: refused for good (never retried)."""


def public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


class OutboundGuard:
    """Which addresses outbound connections may reach (``allowed``; None: ``public_address``),
    and the single resolution each connection makes."""

    def __init__(self, allowed: Callable[[str], bool] | None = None) -> None:
        self.allowed = allowed

    async def addresses(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` in the resolver's order, resolved once; OutboundRefused
        unless every one of them is allowed (an answer mixing public and private is refused)."""
        try:
            literal = str(ipaddress.ip_address(host.strip("[]")))
        except ValueError:
            pass
        else:
            return self._checked(host, [literal])
        try:
            found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            raise httpx.ConnectError(f"{host} does not resolve: {error}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        if not addresses:
            raise httpx.ConnectError(f"{host} does not resolve: no address")
        return self._checked(host, addresses)

    def _checked(self, host: str, addresses: list[str]) -> list[str]:
        allowed = self.allowed or public_address  # looked up now: a test may stand in its own rule
        refused = sorted(a for a in addresses if not allowed(a))
        if refused:
            raise OutboundRefused(
                f"{host} resolves to a non-public address ({', '.join(refused)}): outbound requests "
                "may only reach public addresses (FLOWLINE_ALLOW_PRIVATE_OUTBOUND lifts this)"
            )
        return addresses

    async def connect(self, host: str, port: int) -> socket.socket:
        """A TCP socket connected to one of the checked addresses of ``host`` (tried in order),
        for protocols outside httpx (SMTP). The caller bounds the time it may take."""
        loop = asyncio.get_running_loop()
        last: OSError | None = None
        for address in await self.addresses(host, port):
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, (address, port))
            except OSError as error:
                sock.close()
                last = error
                continue
            except BaseException:
                sock.close()
                raise
            return sock
        assert last is not None  # addresses() returns at least one address
        raise last


async def check_host(host: str, port: int) -> list[str]:
    """Raise OutboundRefused unless every address of ``host`` is public; the addresses."""
    return await OutboundGuard().addresses(host, port)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the guard in ``connect_tcp``: the host name is resolved
    once, every address checked, and the socket opened to a checked address. httpcore still
    starts TLS with the host name (SNI and certificate verification are unchanged)."""

    def __init__(self, guard: OutboundGuard, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.guard = guard
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with anyio.fail_after(timeout):
                addresses = await self.guard.addresses(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OutboundRefused:
            raise
        except httpx.ConnectError as error:  # does not resolve: httpx raises it with its request
            raise httpcore.ConnectError(str(error)) from None
        last: httpcore.ConnectError | None = None
        for address in addresses:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=remaining,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectTimeout:
                raise
            except httpcore.ConnectError as error:
                last = error
        assert last is not None  # addresses() returns at least one address
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundRefused("outbound requests do not use Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport whose connection pool connects through ``GuardedBackend``."""

    def __init__(
        self,
        guard: OutboundGuard | None = None,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
    ) -> None:
        # Not super().__init__(): the only thing it does is build ``_pool``, with httpcore's own
        # network backend; this one is the same pool (httpx's defaults) with the guarded backend.
        self.guard = guard or OutboundGuard()
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(self.guard),
        )


def outbound_client(*, timeout: float, allow_private: bool) -> httpx.AsyncClient:
    """The HTTP client of activities: no redirects followed, the guard unless allowed, a span per
    request while tracing is on (flowline/tracing.py)."""
    transport = None if allow_private else GuardedTransport()
    return httpx.AsyncClient(
        timeout=timeout, follow_redirects=False, transport=tracing.traced_transport(transport)
    )
