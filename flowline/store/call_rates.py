"""Rate limits of call_api steps, shared by every worker through the database.

Calls are counted per calendar period (minute, hour or day, in UTC). A journey asks for a slot
and gets the start of the first period that still has room: now, or later, in which case it
waits for it (a durable timer) and is never turned away. Periods fill up in order, so one row
per step holds the whole state, and one atomic upsert hands out a slot on either database.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import case
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.store.database import Store
from flowline.store.tables import call_rates


async def reserve(
    store: Store,
    conn: AsyncConnection,
    *,
    workspace_id: str,
    flow_id: str,
    step_id: str,
    period_seconds: int,
    limit: int,
    at: datetime,
) -> datetime:
    """Take one call of ``limit`` per ``period_seconds``; the moment it may go out (``at`` or later)."""
    current = int(at.timestamp()) // period_seconds
    t = call_rates
    behind = t.c.window_index < current
    full = t.c.used >= limit
    statement = (
        store.insert(t)
        .values(
            workspace_id=workspace_id,
            flow_id=flow_id,
            step_id=step_id,
            period_seconds=period_seconds,
            window_index=current,
            used=1,
        )
        .on_conflict_do_update(
            index_elements=[t.c.workspace_id, t.c.flow_id, t.c.step_id, t.c.period_seconds],
            # SET reads the row as it was: a past period restarts at the current one, a full one
            # hands out the first call of the next.
            set_={
                "window_index": case((behind, current), (full, t.c.window_index + 1), else_=t.c.window_index),
                "used": case((behind, 1), (full, 1), else_=t.c.used + 1),
            },
        )
        .returning(t.c.window_index)
    )
    index = (await conn.execute(statement)).scalar_one()
    return max(at, datetime.fromtimestamp(index * period_seconds, UTC))
