"""The provider of each channel, built from the workspace's channel settings."""

from __future__ import annotations

import httpx

from flowline.channels.config import ChannelSettings
from flowline.channels.fcm import FcmPush
from flowline.channels.providers import MessageChannel, Provider
from flowline.channels.twilio import TwilioSms


def provider_for(
    channel: MessageChannel, settings: ChannelSettings, http: httpx.AsyncClient
) -> Provider | None:
    """The configured provider of ``channel``; None when the workspace configured none."""
    match channel:
        case "email":
            return None
        case "sms":
            return None if settings.sms is None else TwilioSms(settings.sms, http)
        case "push":
            return None if settings.push is None else FcmPush(settings.push, http)
