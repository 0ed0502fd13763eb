"""The provider of each channel, built from the workspace's channel settings."""

from __future__ import annotations

import httpx

from flowline.channels.config import ChannelSettings
from flowline.channels.fcm import FcmPush
from flowline.channels.outbound import GuardedTransport, OutboundGuard
from flowline.channels.providers import MessageChannel, Provider
from flowline.channels.smtp import SmtpProvider
from flowline.channels.twilio import TwilioSms


def _guard(http: httpx.AsyncClient) -> OutboundGuard | None:
    """The SSRF guard ``http`` carries (the worker's client, unless private addresses are
    allowed): SMTP connections, made outside httpx, follow the same rule."""
    transport = getattr(http, "_transport", None)
    return transport.guard if isinstance(transport, GuardedTransport) else None


def provider_for(
    channel: MessageChannel, settings: ChannelSettings, http: httpx.AsyncClient
) -> Provider | None:
    """The configured provider of ``channel``; None when the workspace configured none."""
    match channel:
        case "email":
            if settings.email is None:
                return None
            guard = _guard(http)
            return SmtpProvider(settings.email, allow_private=guard is None, guard=guard)
        case "sms":
            return None if settings.sms is None else TwilioSms(settings.sms, http)
        case "push":
            return None if settings.push is None else FcmPush(settings.push, http)
