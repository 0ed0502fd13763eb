"""Each journey's path in the store: one row per step visit, numbered by ``seq`` from the journey's
first step on (across continue-as-new). Written by the journey before long waits and at its end
(workflows/interpreter/path_records.py); upserts by (journey_id, seq) make retried writes exact."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.journey import JourneyRef, PathEntry
from flowline.store.database import one_of
from flowline.store.tables import journey_steps

# What a later write of the same visit may change (an open visit gets its exit).
_UPDATED = ("left_at", "branch", "error", "started_journey", "entered_at", "step_id", "step_type")


async def record_steps(conn: AsyncConnection, ref: JourneyRef, start: int, path: Sequence[PathEntry]) -> None:
    """Upsert ``path`` as the visits numbered ``start``, ``start + 1``, ..."""
    if not path:
        return
    rows = [
        {
            "journey_id": ref.journey_id,
            "seq": start + offset,
            "workspace_id": ref.workspace_id,
            "flow_id": ref.flow_id,
            "version": ref.version,
            "step_id": entry.step,
            "step_type": entry.type,
            "entered_at": entry.entered_at,
            "left_at": entry.left_at,
            "branch": entry.branch,
            "error": entry.error,
            "started_journey": entry.started_journey,
        }
        for offset, entry in enumerate(path)
    ]
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(journey_steps)
    statement = statement.on_conflict_do_update(
        index_elements=[journey_steps.c.journey_id, journey_steps.c.seq],
        set_={name: statement.excluded[name] for name in _UPDATED},
    )
    await conn.execute(statement, rows)


async def left_before(conn: AsyncConnection, journey_id: str, start: int, count: int) -> set[int]:
    """The seqs among ``start`` .. ``start + count - 1`` already written as left (the metrics count
    a visit once: a path write repeats the last visit the previous one wrote)."""
    if count <= 0:
        return set()
    query = select(journey_steps.c.seq).where(
        journey_steps.c.journey_id == journey_id,
        journey_steps.c.seq >= start,
        journey_steps.c.seq < start + count,
        journey_steps.c.left_at.is_not(None),
    )
    return set((await conn.execute(query)).scalars())


async def path_of(conn: AsyncConnection, workspace_id: str, journey_id: str) -> list[dict[str, Any]]:
    """The recorded visits of one journey, in order, shaped like the workflow's path entries."""
    query = (
        select(journey_steps)
        .where(journey_steps.c.workspace_id == workspace_id, journey_steps.c.journey_id == journey_id)
        .order_by(journey_steps.c.seq)
    )
    return [_entry(dict(r._mapping)) for r in await conn.execute(query)]


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": row["seq"],
        "step": row["step_id"],
        "type": row["step_type"],
        "entered_at": row["entered_at"],
        "left_at": row["left_at"],
        "branch": row["branch"],
        "error": row["error"],
        "started_journey": row["started_journey"],
    }


async def latest_steps(conn: AsyncConnection, journey_ids: Collection[str]) -> dict[str, dict[str, Any]]:
    """The latest recorded visit of each of these journeys (those with none are left out)."""
    if not journey_ids:
        return {}
    ids = sorted(journey_ids)
    latest = (
        select(journey_steps.c.journey_id, func.max(journey_steps.c.seq).label("seq"))
        .where(one_of(conn.dialect.name, journey_steps.c.journey_id, ids))
        .group_by(journey_steps.c.journey_id)
        .subquery()
    )
    query = select(journey_steps).join(
        latest, (journey_steps.c.journey_id == latest.c.journey_id) & (journey_steps.c.seq == latest.c.seq)
    )
    return {str(r.journey_id): _entry(dict(r._mapping)) for r in await conn.execute(query)}


async def current_steps(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> dict[str, str | None]:
    """Where each of these journeys (journeys rows) is: an ended one at its last step, a running one
    at its latest recorded visit while that is open (None when none is: it has not written yet)."""
    running = [r["id"] for r in rows if r["status"] == "running"]
    latest = await latest_steps(conn, running)
    found: dict[str, str | None] = {}
    for row in rows:
        if row["status"] != "running":
            found[row["id"]] = row.get("last_step")
            continue
        visit = latest.get(row["id"])
        found[row["id"]] = visit["step"] if visit is not None and visit["left_at"] is None else None
    return found
