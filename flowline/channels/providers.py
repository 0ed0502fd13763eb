"""One interface for every message provider: the send activity renders a message, the provider
configured for its channel in the workspace delivers it.

A provider either returns a receipt (the message is accepted) or raises ``DeliveryFailed``:
``permanent`` failures (a refused address, a 4xx) end the send on its ``failed`` branch, the
others are retried by Temporal. ``idempotency_key`` is the ledger's key for this delivery and is
the same on every attempt; providers that take one pass it on (an HTTP header, an SMTP
Message-ID), so a retry after a lost answer is recognised downstream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

MessageChannel = Literal["email", "sms", "push"]


@dataclass(frozen=True)
class OutgoingMessage:
    channel: MessageChannel
    # The ledger key: the same on every attempt of one delivery.
    idempotency_key: str
    # An email address, a phone number (E.164) or a push token.
    to: str
    # A named sender of the workspace's configuration (None: the channel's default).
    sender: str | None = None
    subject: str = ""
    # email: text and/or HTML parts; sms and push: ``text`` is the body.
    text: str | None = None
    html: str | None = None
    # push: the notification title and custom data.
    title: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    # email: extra headers (List-Unsubscribe, ...).
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Receipt:
    # The provider's id for the message: delivery reports name it.
    provider_message_id: str | None = None


class DeliveryFailed(Exception):
    """The provider did not take the message. ``permanent``: retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class Provider(Protocol):
    async def send(self, message: OutgoingMessage) -> Receipt: ...
