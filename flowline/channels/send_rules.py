"""The rules a message passes at send time, over one recipient's profile: do-not-contact, an
address to send to, the frequency cap. Each refusal is a reason recorded on the delivery and
the send's ``skipped`` branch."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# A do-not-contact entry on this channel blocks every channel.
ALL_CHANNELS = "all"


def contact_blocked(entries: Iterable[Any], channel: str, sender: str | None) -> bool:
    """Whether an entry ({channel, sender}) forbids ``channel`` from ``sender``: an entry without a
    sender forbids every sender; one with a sender forbids only that one."""
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        if entry.get("channel") not in (channel, ALL_CHANNELS):
            continue
        if entry.get("sender") is None or entry.get("sender") == sender:
            return True
    return False


def address_of(channel: str, attributes: dict[str, Any]) -> str | None:
    """The recipient's email address or phone number (standard attributes), if any."""
    key = {"email": "email", "sms": "phone"}.get(channel)
    value = attributes.get(key) if key else None
    return value.strip() if isinstance(value, str) and value.strip() else None
