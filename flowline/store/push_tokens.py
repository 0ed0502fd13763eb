"""A person's push tokens (device registrations), one row per token."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.store.database import Store, utcnow
from flowline.store.profiles import ensure_profiles
from flowline.store.tables import push_tokens


async def set_push_tokens(
    store: Store, conn: AsyncConnection, workspace_id: str, profile_id: str, tokens: list[dict[str, str]]
) -> None:
    """Replace the person's tokens with ``tokens`` ([{token, platform}]); the profile is created
    if missing. A token given twice keeps its last platform."""
    now = utcnow()
    await ensure_profiles(store, conn, workspace_id, [profile_id], now=now)
    await conn.execute(
        push_tokens.delete().where(
            push_tokens.c.workspace_id == workspace_id, push_tokens.c.profile_id == profile_id
        )
    )
    unique = {t["token"]: t["platform"] for t in tokens}
    if unique:
        rows = [
            {
                "workspace_id": workspace_id,
                "profile_id": profile_id,
                "token": token,
                "platform": platform,
                "created_at": now,
            }
            for token, platform in unique.items()
        ]
        await conn.execute(push_tokens.insert(), rows)


async def push_tokens_of(conn: AsyncConnection, workspace_id: str, profile_id: str) -> list[dict[str, Any]]:
    query = (
        select(push_tokens.c.token, push_tokens.c.platform)
        .where(push_tokens.c.workspace_id == workspace_id, push_tokens.c.profile_id == profile_id)
        .order_by(push_tokens.c.token)
    )
    return [dict(r._mapping) for r in await conn.execute(query)]


async def remove_push_token(
    conn: AsyncConnection, workspace_id: str, token: str, profile_id: str | None = None
) -> int:
    """Forget a token the push provider no longer knows (fcm.TokenUnregistered); with
    ``profile_id`` only that person's registration. Returns how many rows went."""
    condition = [push_tokens.c.workspace_id == workspace_id, push_tokens.c.token == token]
    if profile_id is not None:
        condition.append(push_tokens.c.profile_id == profile_id)
    result = await conn.execute(push_tokens.delete().where(*condition))
    return int(result.rowcount or 0)
