"""SSRF protection for every outbound HTTP request a flow or a workspace's settings can aim:
webhooks, call_api, and HTTP message providers.

A flow author must not reach the machines behind Flowline (cloud metadata at 169.254.169.254,
the database, the Temporal frontend, other tenants' services). The worker's HTTP client uses
``GuardedTransport``: before each request the host is resolved and every address it resolves
to must be public (not loopback, private, link-local, multicast, reserved or unspecified,
also when IPv4-mapped in IPv6). Redirects are not followed by these clients, so each hop would
be checked anyway.

The check resolves the name once and the connection resolves it again, so a name whose DNS
answer changes between the two (DNS rebinding) could slip through; pin egress with a proxy or
network policy where that matters. ``allow_private`` turns the guard off: the embedded stack of
``cli.py run`` does, so flows can call receivers on the developer's machine, and so do tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpx


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


async def check_host(host: str, port: int) -> None:
    """Raise OutboundRefused unless every address of ``host`` is public."""
    try:
        addresses = [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        try:
            found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            raise httpx.ConnectError(f"{host} does not resolve: {error}") from None
        addresses = sorted({str(info[4][0]) for info in found})
    refused = [a for a in addresses if not public_address(a)]
    if refused:
        raise OutboundRefused(
            f"{host} resolves to a non-public address ({', '.join(refused)}): outbound requests "
            "may only reach public addresses (FLOWLINE_ALLOW_PRIVATE_OUTBOUND lifts this)"
        )


class GuardedTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        await check_host(url.host, url.port or (443 if url.scheme == "https" else 80))
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def outbound_client(*, timeout: float, allow_private: bool) -> httpx.AsyncClient:
    """The HTTP client of activities: no redirects followed, the guard unless allowed."""
    transport = None if allow_private else GuardedTransport()
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False, transport=transport)
