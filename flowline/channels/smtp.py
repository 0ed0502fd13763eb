"""Email over SMTP (aiosmtplib): one MIME message with text and HTML alternatives per delivery.

The Message-ID derives from the delivery's idempotency key, so a send retried after a lost
answer carries the same Message-ID as the first attempt: receiving systems and the people
reading the mail can tell it is the same message, and bounce reports name it.
SMTP replies decide what a failure means: 5xx (a refused recipient, a rejected message) is
permanent, 4xx and broken connections are retried.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import aiosmtplib
import httpx

from flowline import tracing
from flowline.channels.config import SmtpSettings
from flowline.channels.outbound import OutboundGuard, OutboundRefused
from flowline.channels.providers import DeliveryFailed, OutgoingMessage, Receipt

# The name this host gives in EHLO, looked up once per process.
LOCAL_HOSTNAME = socket.getfqdn()
_BREAKS = re.compile(r"[\r\n]+")
_DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,200}$")
# Headers the provider sets itself; a step's extra headers cannot replace them.
_OWN_HEADERS = {"from", "to", "subject", "message-id", "date", "mime-version", "content-type"}


def message_id(idempotency_key: str, from_address: str) -> str:
    """``<key@domain>``: stable for one delivery. Keys that are not a valid dot-atom (or are
    long) are hashed."""
    local = idempotency_key
    if not _DOT_ATOM.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        local = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    domain = parseaddr(from_address)[1].rpartition("@")[2] or "flowline"
    return f"<{local}@{domain}>"


def _one_line(value: str) -> str:
    # A rendered subject may hold line breaks; in a header they would start new headers.
    return _BREAKS.sub(" ", value).strip()


def build_message(message: OutgoingMessage, from_address: str) -> EmailMessage:
    """The MIME message; ValueError for an address or header the email format cannot carry."""
    mime = EmailMessage()
    mime["From"] = from_address
    mime["To"] = message.to
    mime["Subject"] = _one_line(message.subject)
    mime["Message-ID"] = message_id(message.idempotency_key, from_address)
    mime["Date"] = formatdate(localtime=False, usegmt=True)
    for name, value in message.headers.items():
        if name.lower() not in _OWN_HEADERS:
            mime[name] = _one_line(value)
    if message.text is not None:
        mime.set_content(message.text, subtype="plain")
        if message.html is not None:
            mime.add_alternative(message.html, subtype="html")
    elif message.html is not None:
        mime.set_content(message.html, subtype="html")
    else:
        mime.set_content("", subtype="plain")
    return mime


class SmtpProvider:
    def __init__(
        self, settings: SmtpSettings, *, allow_private: bool = False, guard: OutboundGuard | None = None
    ) -> None:
        self.settings = settings
        # The SMTP host is a workspace's setting: like HTTP providers it may only reach public
        # addresses (flowline/channels/outbound.py) unless the deployment allows private ones.
        # The guard opens the connection itself, to the address it checked (no DNS rebinding).
        self.guard = None if allow_private else (guard or OutboundGuard())

    def from_address(self, sender: str | None) -> str:
        if sender is None:
            return self.settings.from_address
        try:
            return self.settings.senders[sender]
        except KeyError:
            # Sending as someone else would be worse than not sending.
            raise DeliveryFailed(f"unknown email sender {sender!r}", permanent=True) from None

    async def send(self, message: OutgoingMessage) -> Receipt:
        settings = self.settings
        from_address = self.from_address(message.sender)
        try:
            mime = build_message(message, from_address)
        except (ValueError, TypeError, IndexError) as error:
            raise DeliveryFailed(f"the message cannot be sent as email: {error}", permanent=True) from error
        recipient = parseaddr(message.to)[1]
        if "@" not in recipient:
            raise DeliveryFailed(f"not an email address: {message.to!r}", permanent=True)
        # The host and port only: the recipient and the message stay out of traces.
        with tracing.client_span(
            "SMTP send", {"server.address": settings.host, "server.port": settings.port}
        ):
            return await self._send(mime, from_address, recipient)

    async def _send(self, mime: EmailMessage, from_address: str, recipient: str) -> Receipt:
        settings = self.settings
        sock: socket.socket | None = None
        try:
            if self.guard is not None:
                try:
                    async with asyncio.timeout(settings.timeout_seconds):
                        sock = await self.guard.connect(settings.host, settings.port)
                except TimeoutError:
                    raise DeliveryFailed(
                        f"SMTP unavailable: connecting to {settings.host}:{settings.port} timed out",
                        permanent=False,
                    ) from None
            await aiosmtplib.send(
                mime,
                sender=parseaddr(from_address)[1] or from_address,
                recipients=[recipient],
                # With a socket, the host name is only what TLS verifies (and its SNI).
                hostname=settings.host,
                port=settings.port if sock is None else None,
                sock=sock,
                username=settings.username,
                password=settings.password,
                use_tls=settings.security == "tls",
                start_tls=settings.security == "starttls",
                timeout=settings.timeout_seconds,
                # Without it aiosmtplib looks up this machine's FQDN (in a thread) for every message.
                local_hostname=LOCAL_HOSTNAME,
            )
        except OutboundRefused as refused:
            raise DeliveryFailed(str(refused), permanent=True) from refused
        except httpx.ConnectError as error:
            # The host name does not resolve (now): retried.
            raise DeliveryFailed(f"SMTP unavailable: {error}", permanent=False) from error
        except aiosmtplib.SMTPRecipientsRefused as refused:
            codes = [r.code for r in refused.recipients]
            detail = "; ".join(f"{r.code} {r.message}" for r in refused.recipients)
            raise DeliveryFailed(
                f"recipient refused: {detail}", permanent=all(500 <= c < 600 for c in codes)
            ) from refused
        except aiosmtplib.SMTPAuthenticationError as error:
            # The workspace's credentials are wrong: retried until someone fixes the settings.
            raise DeliveryFailed(
                f"SMTP authentication failed: {error.code} {error.message}", permanent=False
            ) from error
        except aiosmtplib.SMTPResponseException as error:
            permanent = 500 <= error.code < 600
            raise DeliveryFailed(f"SMTP {error.code} {error.message}", permanent=permanent) from error
        except (aiosmtplib.SMTPException, OSError) as error:
            # Connection refused, timeouts, a dropped connection: worth another attempt.
            raise DeliveryFailed(f"SMTP unavailable: {error}", permanent=False) from error
        finally:
            if sock is not None:
                sock.close()  # aiosmtplib closed it already unless it failed before taking it
        return Receipt(provider_message_id=mime["Message-ID"])
