"""The audience of a condition: the profiles of a workspace it holds for, computed in SQL.

One unreadable row never fails a whole workspace: on SQLite a row its JSON functions call
malformed (NaN / Infinity stored before they were refused) or a value a registered function
cannot take (a date-time beyond year 9999 in the profile's zone) fails the statement that reads
it. Then, and only then, the same query runs again restricted to chunks of profile ids, a failing
chunk is halved down to the one profile that fails, and that profile is skipped and logged with
its id (``skipping_unreadable``); the happy path runs exactly the statements it always did.
PostgreSQL's compiled SQL has no such failure: jsonb holds no malformed value, and the casts that
could fail on a value (a numeric string too long for numeric, a number beyond a double compared
in float8) are guarded in flowline/conditions/sql.py; tests/test_segment_poison.py tries them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.conditions.rules import Condition
from flowline.conditions.sql import compile_audience, compile_condition
from flowline.store.tables import events, profiles, segment_members

log = logging.getLogger(__name__)
T = TypeVar("T")
# Messages of SQLite errors caused by one row's data, not by the query ("string or blob too big"
# is how Python's sqlite3 reports an OverflowError raised in a registered function).
_ROW_FAULTS = (
    "malformed JSON",
    "JSON cannot hold BLOB values",
    "user-defined function raised exception",
    "string or blob too big",
)
# Profiles per query once a row failed: a failing chunk is halved until the profile is found.
_CHUNK = 500


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
    try:
        return list((await conn.execute(query)).scalars().all())
    except DBAPIError as error:
        if not row_fault(conn, error):
            raise
    found = sorted(await _tolerant_matching(conn, workspace_id, condition, now, None))
    return found[offset : offset + limit]


async def count(conn: AsyncConnection, workspace_id: str, condition: Condition, now: datetime) -> int:
    """How many profiles ``condition`` holds for at ``now`` (each event window read once)."""
    await _tuned(conn, whole_audience=True)
    where = _where(conn, workspace_id, condition, now, audience=True)
    query = select(func.count()).select_from(profiles).where(*where)  # type: ignore[arg-type]
    try:
        return int((await conn.execute(query)).scalar_one())
    except DBAPIError as error:
        if not row_fault(conn, error):
            raise
    return len(await _tolerant_matching(conn, workspace_id, condition, now, None))


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
    try:
        return {str(i) for i in (await conn.execute(query)).scalars()}
    except DBAPIError as error:
        if not row_fault(conn, error):
            raise
    return await _tolerant_matching(conn, workspace_id, condition, now, profile_ids)


async def _tolerant_matching(
    conn: AsyncConnection,
    workspace_id: str,
    condition: Condition,
    now: datetime,
    profile_ids: Collection[str] | None,
) -> set[str]:
    """``matching``, skipping the profiles whose rows cannot be read."""
    inside = compile_condition(condition, workspace_id=workspace_id, now=now, dialect=conn.dialect.name)

    async def run(chunk: list[str]) -> list[str]:
        query = select(profiles.c.id).where(
            profiles.c.workspace_id == workspace_id, profiles.c.id.in_(chunk), inside
        )
        return [str(i) for i in (await conn.execute(query)).scalars()]

    return set(await skipping_unreadable(conn, workspace_id, profile_ids, run))


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
    try:
        rows: Sequence[Any] = (
            await conn.execute(
                query if profile_ids is None else query.where(profiles.c.id.in_(sorted(profile_ids)))
            )
        ).all()
    except DBAPIError as error:
        if not row_fault(conn, error):
            raise

        async def run(chunk: list[str]) -> Sequence[Any]:
            return (await conn.execute(query.where(profiles.c.id.in_(chunk)))).all()

        # An unreadable profile is neither entering nor leaving: its membership stays as it was.
        rows = sorted(await skipping_unreadable(conn, workspace_id, profile_ids, run), key=lambda r: r.id)
    entering: list[str] = []
    leaving: dict[str, datetime] = {}
    for row in rows:
        if row.inside:
            entering.append(str(row.id))
        else:
            leaving[str(row.id)] = row.entered_at
    return entering, leaving


def row_fault(conn: AsyncConnection, error: DBAPIError) -> bool:
    """Whether ``error`` comes from one row's data (see the module's docstring)."""
    return conn.dialect.name == "sqlite" and any(fault in str(error.orig) for fault in _ROW_FAULTS)


async def skipping_unreadable(
    conn: AsyncConnection,
    workspace_id: str,
    profile_ids: Collection[str] | None,
    run: Callable[[list[str]], Awaitable[Sequence[T]]],
    *,
    after: str | None = None,
    enough: int | None = None,
) -> list[T]:
    """``run`` over chunks of ``profile_ids`` (None: the workspace's profiles past ``after``, in id
    order), halving a chunk that fails on a row until the one profile is left, which is skipped
    and logged. Stops once ``enough`` results are found (a page)."""
    found: list[T] = []
    async for ids in _id_chunks(conn, workspace_id, profile_ids, after):
        pending = [ids]
        while pending:
            chunk = pending.pop()
            try:
                found.extend(await run(chunk))
            except DBAPIError as error:
                if not row_fault(conn, error):
                    raise
                if len(chunk) == 1:
                    await _log_unreadable(conn, workspace_id, chunk[0], error)
                else:
                    half = len(chunk) // 2
                    pending += [chunk[half:], chunk[:half]]
        if enough is not None and len(found) >= enough:
            break
    return found


async def _id_chunks(
    conn: AsyncConnection, workspace_id: str, profile_ids: Collection[str] | None, after: str | None
) -> AsyncIterator[list[str]]:
    if profile_ids is not None:
        ids = sorted(profile_ids)
        for start in range(0, len(ids), _CHUNK):
            yield ids[start : start + _CHUNK]
        return
    while True:
        query = select(profiles.c.id).where(profiles.c.workspace_id == workspace_id)
        if after is not None:
            query = query.where(profiles.c.id > after)
        chunk = [str(i) for i in (await conn.execute(query.order_by(profiles.c.id).limit(_CHUNK))).scalars()]
        if chunk:
            yield chunk
        if len(chunk) < _CHUNK:
            return
        after = chunk[-1]


async def _log_unreadable(
    conn: AsyncConnection, workspace_id: str, profile_id: str, error: DBAPIError
) -> None:
    """Name the skipped profile, and its malformed rows where SQLite can tell (the repair,
    ``cli.py repair-json``, makes NaN / Infinity null)."""
    malformed: list[str] = []
    profile = (
        await conn.execute(
            select(
                func.json_valid(profiles.c.attributes),
                func.json_valid(profiles.c.tags),
                func.json_valid(profiles.c.do_not_contact),
            ).where(profiles.c.workspace_id == workspace_id, profiles.c.id == profile_id)
        )
    ).first()
    if profile is not None:
        malformed += [
            name
            for name, valid in zip(("attributes", "tags", "do_not_contact"), profile, strict=True)
            if not valid
        ]
    bad_events = (
        await conn.execute(
            select(events.c.id)
            .where(
                events.c.workspace_id == workspace_id,
                events.c.profile_id == profile_id,
                func.json_valid(events.c.properties) == 0,
            )
            .order_by(events.c.id)
            .limit(10)
        )
    ).scalars()
    malformed += [f"event {event_id}" for event_id in bad_events]
    log.warning(
        "profile %s of workspace %s skipped by a segment query: its data cannot be read (%s)%s",
        profile_id,
        workspace_id,
        error.orig,
        f"; malformed JSON: {', '.join(malformed)} (python cli.py repair-json makes NaN / Infinity null)"
        if malformed
        else "",
    )
