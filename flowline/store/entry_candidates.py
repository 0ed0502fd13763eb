"""Who a scheduled entry run considers, a page at a time (keyset pages by profile id, so a page
costs the same at the end of a large audience as at its start). A row SQLite cannot read is
skipped and logged, as in segment queries (flowline/store/segments_query.py)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, String, cast, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.conditions.rules import Condition
from flowline.conditions.sql import compile_condition
from flowline.store.segments_query import row_fault, skipping_unreadable
from flowline.store.tables import profiles


def _attribute_text(dialect: str, name: str) -> ColumnElement[Any]:
    """A top-level attribute's text (strings as they are), NULL when missing."""
    if dialect == "postgresql":
        text: ColumnElement[Any] = profiles.c.attributes.op("->>")(name)
        return text
    path = '$."' + name.replace('"', '\\"') + '"'
    return cast(func.json_extract(profiles.c.attributes, path), String)


def _base(conn: AsyncConnection, workspace_id: str, at: datetime, condition: Condition | None) -> list[Any]:
    # Profiles created after the run's time were not in the audience at that time; this also keeps
    # a retried run from finding people the first attempt could not have seen. The schedule gives
    # the run's time to the second (TemporalScheduledStartTime): the second it names counts whole.
    cutoff = at + timedelta(seconds=1)
    where: list[Any] = [profiles.c.workspace_id == workspace_id, profiles.c.created_at < cutoff]
    if condition is not None:
        where.append(
            compile_condition(condition, workspace_id=workspace_id, now=at, dialect=conn.dialect.name)
        )
    return where


async def audience_page(
    conn: AsyncConnection,
    workspace_id: str,
    condition: Condition,
    at: datetime,
    *,
    after: str | None,
    limit: int,
) -> list[str]:
    """Ids (ascending, past ``after``) of the profiles ``condition`` holds for at ``at``."""
    query = select(profiles.c.id).where(*_base(conn, workspace_id, at, condition))
    rows = await _page(conn, workspace_id, query, after=after, limit=limit)
    return [str(r[0]) for r in rows]


async def dated_page(
    conn: AsyncConnection,
    workspace_id: str,
    attribute: str,
    prefixes: Collection[str],
    position: int,
    at: datetime,
    condition: Condition | None,
    *,
    after: str | None,
    limit: int,
) -> list[tuple[str, str, str | None]]:
    """(id, attribute text, ``timezone`` attribute) of the profiles past ``after`` whose
    ``attribute`` text has one of ``prefixes`` at ``position`` (1-based) and that ``condition``
    (when given) holds for at ``at``."""
    dialect = conn.dialect.name
    value = _attribute_text(dialect, attribute)
    length = len(next(iter(prefixes))) if prefixes else 0
    query = select(profiles.c.id, value, _attribute_text(dialect, "timezone")).where(
        *_base(conn, workspace_id, at, condition),
        func.substr(value, position, length).in_(sorted(prefixes)),
    )
    rows = await _page(conn, workspace_id, query, after=after, limit=limit)
    return [(r[0], r[1], r[2]) for r in rows]


async def _page(
    conn: AsyncConnection, workspace_id: str, query: Select[Any], *, after: str | None, limit: int
) -> Sequence[Any]:
    """The first ``limit`` rows of ``query`` past ``after``, by profile id."""
    if after is not None:
        query = query.where(profiles.c.id > after)
    query = query.order_by(profiles.c.id)
    try:
        rows: Sequence[Any] = (await conn.execute(query.limit(limit))).all()
        return rows
    except DBAPIError as error:
        if not row_fault(conn, error):
            raise

    async def run(chunk: list[str]) -> Sequence[Any]:
        chunk_rows: Sequence[Any] = (await conn.execute(query.where(profiles.c.id.in_(chunk)))).all()
        return chunk_rows

    found = await skipping_unreadable(conn, workspace_id, None, run, after=after, enough=limit)
    return found[:limit]
