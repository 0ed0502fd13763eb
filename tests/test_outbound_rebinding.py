"""DNS rebinding against the SSRF guard: a name answers an allowed address to one lookup and a
refused one to the next. The guard resolves once, checks that answer and connects to the address
it checked, so the second answer is never used; a check followed by an ordinary connection (the
guard before this change) reaches the second address.

DNS is outside our world, so ``socket.getaddrinfo`` answers for the test's names in-process
(every lookup of the event loop, anyio and httpcore goes through it). The servers are real: the
"allowed" one on 127.0.0.1, the "refused" one on 127.0.0.2 with the same port, and the tests'
guard counts 127.0.0.1 as public (``OutboundGuard(allowed=...)``) so nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from temporalio.testing import WorkflowEnvironment

from flowline.channels import outbound
from flowline.channels.outbound import GuardedTransport, OutboundGuard, OutboundRefused, outbound_client
from flowline.channels.providers import DeliveryFailed, OutgoingMessage
from flowline.channels.smtp import SmtpProvider
from flowline.store.database import Store
from tests.conftest import finish
from tests.servers import HttpSink, Reply, http_sink
from tests.smtp import SmtpServer
from tests.test_custom_elements import custom_flow, put_element, register_element
from tests.test_journeys import publish
from worker import running_worker

NAME = "rebind.test"
CHECKED, REBOUND = "127.0.0.1", "127.0.0.2"


def loopback_one_is_public(address: str) -> bool:
    """The tests' rule: 127.0.0.1 stands for a public address, everything else is refused."""
    return address == CHECKED


GUARD = OutboundGuard(allowed=loopback_one_is_public)


@dataclass
class Dns:
    """What the tests' names resolve to: each lookup takes the next answer, the last repeats."""

    answers: dict[str, list[list[str]]] = field(default_factory=dict)
    lookups: dict[str, int] = field(default_factory=dict)

    def answer(self, name: str, *answers: list[str]) -> None:
        self.answers[name] = list(answers)
        self.lookups[name] = 0


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Dns:
    dns = Dns()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, *args: Any, **kw: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in dns.answers:
            return real(host, port, family, type, *args, **kw)
        seen = dns.lookups[name]
        dns.lookups[name] = seen + 1
        addresses = dns.answers[name][min(seen, len(dns.answers[name]) - 1)]
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        number = int(port) if port is not None else 0
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, number)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return dns


@dataclass
class Pair:
    """Two real HTTP servers on the same port: the checked address and the rebound one."""

    checked: HttpSink
    rebound: HttpSink
    port: int

    def url(self, path: str, name: str = NAME) -> str:
        return f"http://{name}:{self.port}{path}"


@pytest.fixture
def pair() -> Iterator[Pair]:
    with http_sink(CHECKED) as checked:
        port = int(checked.url.rsplit(":", 1)[1])
        with http_sink(REBOUND, port) as rebound:
            yield Pair(checked, rebound, port)


def guarded(**options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=GuardedTransport(GUARD, **options), timeout=5)


async def test_the_guard_connects_to_the_address_it_checked(dns: Dns, pair: Pair) -> None:
    dns.answer(NAME, [CHECKED], [REBOUND])
    async with guarded() as client:
        response = await client.get(pair.url("/x"))
    assert response.status_code == 200
    assert [r.headers["Host"] for r in pair.checked.received] == [f"{NAME}:{pair.port}"]
    assert pair.rebound.received == []
    assert dns.lookups[NAME] == 1, "resolved once: the connection used the answer the check saw"


async def test_a_check_then_an_ordinary_connection_reaches_the_rebound_address(dns: Dns, pair: Pair) -> None:
    """The guard before this change: check_host, then httpx resolving the name again."""
    dns.answer(NAME, [CHECKED], [REBOUND])
    assert await GUARD.addresses(NAME, pair.port) == [CHECKED]  # the check passes
    async with httpx.AsyncClient(timeout=5) as client:
        assert (await client.get(pair.url("/x"))).status_code == 200
    assert pair.checked.received == []
    assert [r.path for r in pair.rebound.received] == ["/x"], "the second answer was used"
    assert dns.lookups[NAME] == 2


async def test_a_refused_first_answer_is_refused_with_its_reason(dns: Dns, pair: Pair) -> None:
    dns.answer(NAME, [REBOUND], [CHECKED])
    async with guarded() as client:
        refusal = r"rebind\.test resolves to a non-public address \(127\.0\.0\.2\)"
        with pytest.raises(OutboundRefused, match=refusal):
            await client.get(pair.url("/x"))
    assert pair.checked.received == pair.rebound.received == []
    assert dns.lookups[NAME] == 1


async def test_an_answer_mixing_allowed_and_refused_addresses_is_refused(dns: Dns, pair: Pair) -> None:
    dns.answer(NAME, [CHECKED, REBOUND])
    async with guarded() as client:
        with pytest.raises(OutboundRefused, match=r"\(127\.0\.0\.2\)"):
            await client.get(pair.url("/x"))
    assert pair.checked.received == pair.rebound.received == []


async def test_every_new_connection_resolves_and_checks_again(dns: Dns, pair: Pair) -> None:
    """The sink closes each connection (HTTP/1.0), so the second request connects anew: it sees the
    name's new answer and is refused, in the same client."""
    dns.answer(NAME, [CHECKED], [REBOUND])
    async with guarded() as client:
        assert (await client.get(pair.url("/1"))).status_code == 200
        with pytest.raises(OutboundRefused):
            await client.get(pair.url("/2"))
    assert [r.path for r in pair.checked.received] == ["/1"]
    assert pair.rebound.received == []
    assert dns.lookups[NAME] == 2


async def test_a_name_that_does_not_resolve_is_a_connect_error_of_its_request(dns: Dns, pair: Pair) -> None:
    dns.answer(NAME, [])
    async with guarded() as client:
        with pytest.raises(httpx.ConnectError, match=r"rebind\.test does not resolve") as failed:
            await client.get(pair.url("/x"))
    assert not isinstance(failed.value, OutboundRefused)  # retried: DNS may come back
    assert failed.value.request.url == pair.url("/x")


async def test_an_address_in_the_url_is_checked_and_used_as_is(pair: Pair) -> None:
    async with guarded() as client:
        assert (await client.get(f"http://{CHECKED}:{pair.port}/x")).status_code == 200
        with pytest.raises(OutboundRefused, match=r"127\.0\.0\.2 resolves to a non-public address"):
            await client.get(f"http://{REBOUND}:{pair.port}/x")
    assert len(pair.checked.received) == 1 and pair.rebound.received == []


async def test_redirects_are_not_followed_and_a_followed_hop_is_checked(dns: Dns, pair: Pair) -> None:
    dns.answer(NAME, [CHECKED])
    dns.answer("inside.test", [REBOUND])
    pair.checked.replies["/moved"] = Reply(302, headers={"Location": pair.url("/x", "inside.test")})
    async with outbound_client(timeout=5, allow_private=True) as client:  # the activities' client
        assert (await client.get(pair.url("/moved"))).status_code == 302
    async with guarded() as client:
        with pytest.raises(OutboundRefused, match=r"inside\.test resolves to a non-public address"):
            await client.get(pair.url("/moved"), follow_redirects=True)
    assert [r.path for r in pair.checked.received] == ["/moved", "/moved"]
    assert pair.rebound.received == []


def test_the_activities_client_carries_the_guard_unless_private_addresses_are_allowed() -> None:
    """Webhooks, call_api, custom elements, Twilio and FCM use the worker's client; destinations
    (test sends and the export batcher) make theirs with outbound_client too."""
    assert isinstance(outbound_client(timeout=1, allow_private=False)._transport, GuardedTransport)
    assert not isinstance(outbound_client(timeout=1, allow_private=True)._transport, GuardedTransport)


# TLS: the socket goes to the checked IP, SNI and certificate verification keep the host name.


@dataclass
class TlsServer:
    port: int
    trust: ssl.SSLContext
    server_names: list[str | None] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)


def _certificate(name: str, directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest_asyncio.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[TlsServer]:
    """An HTTPS server on 127.0.0.1 with a certificate for rebind.test (and only that name)."""
    cert, key = _certificate(NAME, tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server_state = TlsServer(0, ssl.create_default_context(cafile=str(cert)))

    def sni(_sock: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext) -> None:
        server_state.server_names.append(server_name)

    context.sni_callback = sni  # type: ignore[assignment]

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            lines = head.split("\r\n")
            server_state.hosts += [line[5:].strip() for line in lines if line.startswith("Host:")]
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client refused the certificate
        finally:
            writer.close()

    server = await asyncio.start_server(answer, CHECKED, 0, ssl=context)
    server_state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield server_state


async def test_tls_keeps_the_host_name_for_sni_and_the_certificate(dns: Dns, tls_server: TlsServer) -> None:
    dns.answer(NAME, [CHECKED], [REBOUND])
    dns.answer("other.test", [CHECKED])
    async with guarded(verify=tls_server.trust) as client:
        response = await client.get(f"https://{NAME}:{tls_server.port}/x")
        assert (response.status_code, response.text) == (200, "ok")
        # The same server under a name its certificate does not carry: verified against the name.
        with pytest.raises(httpx.ConnectError, match="certificate"):
            await client.get(f"https://other.test:{tls_server.port}/x")
    assert tls_server.server_names == [NAME, "other.test"]
    assert tls_server.hosts == [f"{NAME}:{tls_server.port}"]
    assert dns.lookups[NAME] == 1


# SMTP connects through the guard too, and hands aiosmtplib the socket it connected.


def _mail(to: str) -> OutgoingMessage:
    key = f"k-{time.time_ns()}"
    return OutgoingMessage(channel="email", idempotency_key=key, to=to, subject="Hi", text="Hi")


async def test_smtp_connects_to_the_address_it_checked(dns: Dns, smtp: SmtpServer) -> None:
    """Nothing listens on the rebound address's port: only the checked address delivers."""
    dns.answer("mail.test", [CHECKED], [REBOUND])
    to = f"ada-{time.time_ns()}@example.test"
    await SmtpProvider(smtp.settings(host="mail.test"), guard=GUARD).send(_mail(to))
    assert len(smtp.to(to)) == 1
    assert dns.lookups["mail.test"] == 1


async def test_smtp_refuses_a_host_that_answers_a_refused_address(dns: Dns, smtp: SmtpServer) -> None:
    dns.answer("mail.test", [REBOUND], [CHECKED])
    to = f"ada-{time.time_ns()}@example.test"
    with pytest.raises(DeliveryFailed, match=r"mail\.test resolves to a non-public address") as failed:
        await SmtpProvider(smtp.settings(host="mail.test"), guard=GUARD).send(_mail(to))
    assert failed.value.permanent and smtp.to(to) == []


# Through the worker: a webhook, a call_api step and a custom element on a rebinding name.


async def test_the_worker_reaches_only_the_checked_address(
    api: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    store: Store,
    task_queue: str,
    dns: Dns,
    pair: Pair,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outbound, "public_address", loopback_one_is_public)
    for name in ("hook.test", "call.test", "element.test"):
        dns.answer(name, [CHECKED], [REBOUND])
    await put_element(api, "register", register_element(pair.url("/register", "element.test")))
    pair.checked.replies["/register"] = Reply(201, {"id": "r-1", "codes": ["c"]})
    before = [
        {"id": "hook", "type": "webhook", "url": pair.url("/hook", "hook.test")},
        {"id": "call", "type": "call_api", "method": "GET", "url": pair.url("/call", "call.test")},
    ]
    flow = custom_flow({"element": "register", "params": {"email": "a@b.c"}}, "rebinding", before)
    await publish(api, flow)
    async with running_worker(temporal.client, store, task_queue, webhook_timeout=5):  # the guard is on
        response = await api.post("/v1/events", json={"id": "e1", "profile_id": "ada", "name": "rebinding"})
        [journey_id] = response.json()["journeys"]
        state = await finish(temporal, journey_id)
    assert [entry.error for entry in state.path] == [None] * len(state.path)
    assert sorted(r.path.split("?")[0] for r in pair.checked.received) == ["/call", "/hook", "/register"]
    assert pair.rebound.received == []
