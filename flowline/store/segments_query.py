"""The audience of a condition: the profiles of a workspace it holds for, computed in SQL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.conditions.rules import Condition
from flowline.conditions.sql import compile_audience, compile_condition
from flowline.store.tables import profiles


def _where(
    conn: AsyncConnection, workspace_id: str, condition: Condition, now: datetime, *, audience: bool = False
) -> list[object]:
    compile = compile_audience if audience else compile_condition
    compiled = compile(condition, workspace_id=workspace_id, now=now, dialect=conn.dialect.name)
    return [profiles.c.workspace_id == workspace_id, compiled]


async def _tuned(conn: AsyncConnection, *, whole_audience: bool) -> None:
    """PostgreSQL settings for the rest of this transaction only (SET LOCAL).

    jit off: large plans were compiled to machine code first (about 0.6 s with 1M profiles),
    which these index-bound queries never win back. For a whole audience also: no parallel
    workers, since each worker rebuilt the whole grouped event window (EXPLAIN: HashAggregate
    loops=3), and work_mem to group a window of a million events in memory, not on disk."""
    if conn.dialect.name != "postgresql":
        return
    settings = {"jit": "off"}
    if whole_audience:
        settings |= {"max_parallel_workers_per_gather": "0", "work_mem": "64MB"}
    # set_config(name, value, true) is SET LOCAL; one round trip for all of them.
    calls = ", ".join(f"set_config('{name}', '{value}', true)" for name, value in settings.items())
    await conn.execute(text(f"SELECT {calls}"))


async def members(
    conn: AsyncConnection,
    workspace_id: str,
    condition: Condition,
    now: datetime,
    limit: int = 100,
    offset: int = 0,
) -> list[str]:
    """Ids of the profiles ``condition`` holds for at ``now``, ordered by id. (Correlated
    event counts: a page scans profiles in id order and stops once it is full.)"""
    await _tuned(conn, whole_audience=False)
    query = (
        select(profiles.c.id)
        .where(*_where(conn, workspace_id, condition, now))  # type: ignore[arg-type]
        .order_by(profiles.c.id)
        .limit(limit)
        .offset(offset)
    )
    return list((await conn.execute(query)).scalars().all())


async def count(conn: AsyncConnection, workspace_id: str, condition: Condition, now: datetime) -> int:
    """How many profiles ``condition`` holds for at ``now`` (each event window read once)."""
    await _tuned(conn, whole_audience=True)
    where = _where(conn, workspace_id, condition, now, audience=True)
    query = select(func.count()).select_from(profiles).where(*where)  # type: ignore[arg-type]
    return int((await conn.execute(query)).scalar_one())
