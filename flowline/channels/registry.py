"""The provider of each channel, built from the workspace's channel settings."""

from __future__ import annotations

import httpx

from flowline.channels.config import ChannelSettings
from flowline.channels.providers import MessageChannel, Provider


def provider_for(
    channel: MessageChannel, settings: ChannelSettings, http: httpx.AsyncClient
) -> Provider | None:
    """The configured provider of ``channel``; None when the workspace configured none."""
    match channel:
        case "email":
            return None
        case "sms":
            return None
        case "push":
            return None
