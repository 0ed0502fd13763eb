"""Events: stored once per id (ingestion is idempotent), then routed to flows and journeys."""

from __future__ import annotations

from collections.abc import Container, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.store.database import Store, utcnow
from flowline.store.tables import events


async def insert_events(
    store: Store,
    conn: AsyncConnection,
    workspace_id: str,
    batch: Sequence[dict[str, Any]],
    *,
    routed: Container[str] = (),
) -> set[str]:
    """Insert events that are not stored yet; returns the ids that were new.

    Events in ``routed`` concern no flow or journey: they are stored as routed already.
    """
    if not batch:
        return set()
    now = utcnow()
    rows = [
        {
            "workspace_id": workspace_id,
            "id": e["id"],
            "profile_id": e["profile_id"],
            "name": e["name"],
            "timestamp": e["timestamp"],
            "properties": e.get("properties") or {},
            "received_at": now,
            "routed_at": now if e["id"] in routed else None,
        }
        for e in batch
    ]
    # Statement and parameters apart: the compiled statement is cached, the rows go as executemany.
    statement = store.insert(events).on_conflict_do_nothing().returning(events.c.id)
    return {str(r) for r in (await conn.execute(statement, rows)).scalars()}


async def mark_routed(
    conn: AsyncConnection, workspace_id: str, event_ids: Sequence[str], at: datetime
) -> None:
    if event_ids:
        await conn.execute(
            update(events)
            .where(events.c.workspace_id == workspace_id, events.c.id.in_(event_ids))
            .values(routed_at=at)
        )
