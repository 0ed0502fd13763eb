"""The provider of each channel, built from the workspace's channel settings."""

from __future__ import annotations

import httpx

from flowline.channels.config import ChannelSettings
from flowline.channels.fcm import FcmPush
from flowline.channels.outbound import GuardedTransport
from flowline.channels.providers import MessageChannel, Provider
from flowline.channels.smtp import SmtpProvider
from flowline.channels.twilio import TwilioSms


def _guarded(http: httpx.AsyncClient) -> bool:
    """Whether ``http`` carries the SSRF guard (the worker's client, unless private addresses are
    allowed): SMTP connections, made outside httpx, follow the same rule."""
    return isinstance(getattr(http, "_transport", None), GuardedTransport)


def provider_for(
    channel: MessageChannel, settings: ChannelSettings, http: httpx.AsyncClient
) -> Provider | None:
    """The configured provider of ``channel``; None when the workspace configured none."""
    match channel:
        case "email":
            if settings.email is None:
                return None
            return SmtpProvider(settings.email, allow_private=not _guarded(http))
        case "sms":
            return None if settings.sms is None else TwilioSms(settings.sms, http)
        case "push":
            return None if settings.push is None else FcmPush(settings.push, http)
