"""The audience of a condition: the profiles of a workspace it holds for, computed in SQL."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.conditions.rules import Condition
from flowline.conditions.sql import compile_audience, compile_condition
from flowline.store.tables import profiles, segment_members


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


async def matching(
    conn: AsyncConnection,
    workspace_id: str,
    condition: Condition,
    now: datetime,
    profile_ids: Collection[str] | None = None,
) -> set[str]:
    """Ids of the profiles ``condition`` holds for at ``now``: among ``profile_ids`` only, when
    given (the re-evaluation after new data), else the whole workspace."""
    where = _where(conn, workspace_id, condition, now)
    if profile_ids is not None:
        if not profile_ids:
            return set()
        where.append(profiles.c.id.in_(sorted(profile_ids)))
    query = select(profiles.c.id).where(*where)  # type: ignore[arg-type]
    return {str(i) for i in (await conn.execute(query)).scalars()}


async def membership_changes(
    conn: AsyncConnection,
    workspace_id: str,
    segment_id: str,
    condition: Condition,
    now: datetime,
    profile_ids: Collection[str] | None = None,
) -> tuple[list[str], dict[str, datetime]]:
    """Who ``condition`` now holds for but is not a stored member (entering), and the stored
    members it no longer holds for (leaving, with their entered_at), among ``profile_ids`` when
    given: one query that returns only the differences."""
    if profile_ids is not None and not profile_ids:
        return [], {}
    inside = compile_condition(condition, workspace_id=workspace_id, now=now, dialect=conn.dialect.name)
    member = segment_members.c.profile_id.is_not(None)
    query = (
        select(profiles.c.id, segment_members.c.entered_at, inside.label("inside"))
        .select_from(
            profiles.outerjoin(
                segment_members,
                (segment_members.c.workspace_id == profiles.c.workspace_id)
                & (segment_members.c.segment_id == segment_id)
                & (segment_members.c.profile_id == profiles.c.id),
            )
        )
        .where(profiles.c.workspace_id == workspace_id, inside != member)
        .order_by(profiles.c.id)
    )
    if profile_ids is not None:
        query = query.where(profiles.c.id.in_(sorted(profile_ids)))
    entering: list[str] = []
    leaving: dict[str, datetime] = {}
    for row in await conn.execute(query):
        if row.inside:
            entering.append(str(row.id))
        else:
            leaving[str(row.id)] = row.entered_at
    return entering, leaving
