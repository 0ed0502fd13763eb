"""The in-app inbox: reading and consuming messages (deliveries.py writes them with the ledger)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.store.tables import inbox_messages

# The in-app send stores ``consumable: true`` under this key of the message's data: a message
# that carries a reward the app redeems once.
CONSUMABLE_KEY = "consumable"


def is_consumable(data: dict[str, Any]) -> bool:
    return data.get(CONSUMABLE_KEY) is True


async def get_message(conn: AsyncConnection, workspace_id: str, message_id: str) -> dict[str, Any] | None:
    query = select(inbox_messages).where(
        inbox_messages.c.workspace_id == workspace_id, inbox_messages.c.id == message_id
    )
    row = (await conn.execute(query)).first()
    return None if row is None else dict(row._mapping)


async def _first_time(
    conn: AsyncConnection, workspace_id: str, message_id: str, column: str, at: datetime
) -> bool:
    target = inbox_messages.c[column]
    result = await conn.execute(
        inbox_messages.update()
        .where(
            inbox_messages.c.workspace_id == workspace_id,
            inbox_messages.c.id == message_id,
            target.is_(None),
        )
        .values({target: at})
    )
    return bool(result.rowcount)


async def mark_read(conn: AsyncConnection, workspace_id: str, message_id: str, at: datetime) -> bool:
    """Set read_at unless set; True the first time."""
    return await _first_time(conn, workspace_id, message_id, "read_at", at)


async def mark_consumed(conn: AsyncConnection, workspace_id: str, message_id: str, at: datetime) -> bool:
    """Set consumed_at unless set; True the first time (a concurrent second consume gets False)."""
    return await _first_time(conn, workspace_id, message_id, "consumed_at", at)
