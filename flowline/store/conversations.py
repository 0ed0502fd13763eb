"""Conversations: a person handed over to a human agent (by a flow's start_conversation step)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.store.database import Store, utcnow
from flowline.store.profile_changes import Origin, write_event
from flowline.store.profiles import ensure_profiles
from flowline.store.tables import conversations

CONVERSATION_STARTED = "conversation_started"


async def start_conversation(
    store: Store,
    conn: AsyncConnection,
    workspace_id: str,
    profile_id: str,
    origin: Origin,
    *,
    tag: str | None,
    note: str | None,
) -> tuple[str, bool]:
    """Open a conversation for a human agent, with its ``conversation_started`` event. One per
    journey visit of a step: a second call returns the first's id. Returns (id, created)."""
    await ensure_profiles(store, conn, workspace_id, [profile_id])
    row = {
        "id": uuid.uuid4().hex,
        "workspace_id": workspace_id,
        "profile_id": profile_id,
        "journey_id": origin.journey_id,
        "step_id": origin.step_id,
        "visit": origin.visit,
        "tag": tag,
        "note": note,
        "status": "open",
        "created_at": utcnow(),
    }
    statement = store.insert(conversations).on_conflict_do_nothing().returning(conversations.c.id)
    created = (await conn.execute(statement, row)).scalar_one_or_none()
    if created is None:
        existing = await conn.scalar(
            select(conversations.c.id).where(
                conversations.c.journey_id == origin.journey_id,
                conversations.c.step_id == origin.step_id,
                conversations.c.visit == origin.visit,
            )
        )
        return str(existing), False
    change = {"conversation_id": str(created), "tag": tag, "note": note}
    await write_event(store, conn, workspace_id, profile_id, origin, CONVERSATION_STARTED, change)
    return str(created), True


async def list_conversations(
    conn: AsyncConnection, workspace_id: str, profile_id: str
) -> list[dict[str, Any]]:
    query = (
        select(conversations)
        .where(conversations.c.workspace_id == workspace_id, conversations.c.profile_id == profile_id)
        .order_by(conversations.c.created_at, conversations.c.id)
    )
    return [dict(r._mapping) for r in await conn.execute(query)]
