"""Workspaces (tenants) and their API keys."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.channels.config import SEALED_FIELDS, ChannelSettings
from flowline.secret_box import SecretBox
from flowline.store.database import secret_box, utcnow
from flowline.store.tables import api_keys, workspaces

KEY_PREFIX = "fl_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_workspace(conn: AsyncConnection, workspace_id: str, name: str) -> None:
    await conn.execute(
        workspaces.insert().values(
            id=workspace_id,
            name=name,
            webhook_secret=secrets.token_urlsafe(32),
            tracking_key=secrets.token_urlsafe(32),
            created_at=utcnow(),
        )
    )


async def workspace_exists(conn: AsyncConnection, workspace_id: str) -> bool:
    found = await conn.scalar(select(workspaces.c.id).where(workspaces.c.id == workspace_id))
    return found is not None


async def webhook_secret(conn: AsyncConnection, workspace_id: str) -> str:
    secret = await conn.scalar(select(workspaces.c.webhook_secret).where(workspaces.c.id == workspace_id))
    if secret is None:
        raise LookupError(f"no workspace {workspace_id!r}")
    return str(secret)


async def tracking_key(conn: AsyncConnection, workspace_id: str) -> bytes:
    """The key that signs the workspace's email tracking links, created on first use (workspaces
    made before migration 0015 have none); LookupError for an unknown workspace."""
    query = select(workspaces.c.tracking_key).where(workspaces.c.id == workspace_id)
    key = await conn.scalar(query)
    if key is None:
        # Whoever writes first wins; everyone reads the winner's key.
        await conn.execute(
            workspaces.update()
            .where(workspaces.c.id == workspace_id, workspaces.c.tracking_key.is_(None))
            .values(tracking_key=secrets.token_urlsafe(32))
        )
        key = await conn.scalar(query)
    if key is None:
        raise LookupError(f"no workspace {workspace_id!r}")
    return str(key).encode()


async def create_api_key(conn: AsyncConnection, workspace_id: str, label: str = "") -> str:
    """Create a key and return it in clear: this is the only time it is ever seen."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    await conn.execute(
        api_keys.insert().values(
            id=secrets.token_hex(8),
            workspace_id=workspace_id,
            key_hash=hash_key(key),
            label=label,
            created_at=utcnow(),
        )
    )
    return key


async def workspace_for_key(conn: AsyncConnection, key: str) -> str | None:
    row = await conn.execute(
        select(api_keys.c.workspace_id).where(
            api_keys.c.key_hash == hash_key(key), api_keys.c.revoked_at.is_(None)
        )
    )
    found = row.scalar_one_or_none()
    return None if found is None else str(found)


async def workspace_timezone(conn: AsyncConnection, workspace_id: str) -> str | None:
    """The workspace's default time zone (an IANA name), if one is set."""
    found = await conn.scalar(select(workspaces.c.timezone).where(workspaces.c.id == workspace_id))
    return str(found) if found else None


async def set_workspace_timezone(conn: AsyncConnection, workspace_id: str, timezone: str | None) -> None:
    await conn.execute(workspaces.update().where(workspaces.c.id == workspace_id).values(timezone=timezone))


async def person_zone(conn: AsyncConnection, workspace_id: str, attributes: dict[str, object]) -> str | None:
    """The zone of a person's wall-clock times: their ``timezone`` attribute, else the workspace's."""
    own = attributes.get("timezone")
    if isinstance(own, str) and own:
        return own
    return await workspace_timezone(conn, workspace_id)


async def channel_settings(conn: AsyncConnection, workspace_id: str) -> ChannelSettings:
    """Which provider sends each channel of the workspace (none configured: all None), with its
    secrets opened (flowline/secret_box.py)."""
    raw = await conn.scalar(select(workspaces.c.channels).where(workspaces.c.id == workspace_id))
    return ChannelSettings.model_validate(open_channels(secret_box(conn), raw or {}))


async def set_channel_settings(conn: AsyncConnection, workspace_id: str, settings: ChannelSettings) -> None:
    """Store the settings with their secrets sealed under the newest key."""
    value = seal_channels(secret_box(conn), settings.model_dump(mode="json", exclude_none=True))
    await conn.execute(workspaces.update().where(workspaces.c.id == workspace_id).values(channels=value))


def seal_channels(box: SecretBox, stored: Mapping[str, Any]) -> dict[str, Any]:
    """``workspaces.channels`` with each channel's secrets sealed (opened first: a value sealed
    under an older key is sealed again under the newest)."""
    return {
        channel: box.seal_fields(box.open_fields(value, SEALED_FIELDS), SEALED_FIELDS)
        if isinstance(value, Mapping)
        else value
        for channel, value in stored.items()
    }


def open_channels(box: SecretBox, stored: Mapping[str, Any]) -> dict[str, Any]:
    return {
        channel: box.open_fields(value, SEALED_FIELDS) if isinstance(value, Mapping) else value
        for channel, value in stored.items()
    }


def channel_secrets(stored: Mapping[str, Any] | None) -> list[Any]:
    """The secrets as stored in a ``workspaces.channels`` value (sealed or in clear)."""
    return [
        value[name]
        for value in (stored or {}).values()
        if isinstance(value, Mapping)
        for name in SEALED_FIELDS
        if value.get(name) is not None
    ]
