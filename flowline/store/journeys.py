"""Journey records: who entered which flow version, and how it ended.

The workflow is the source of truth for a journey in flight (its step, path, variables);
this table answers listing questions and enforces re-entry rules with a unique key.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.journey import JourneyEnd
from flowline.store import events as events_store
from flowline.store.database import Store, one_of, utcnow
from flowline.store.event_exports import export_events
from flowline.store.profiles import profile_exists
from flowline.store.tables import events, journey_steps, journeys

Reentry = Literal["never", "after_exit", "concurrent"]
ONCE = "once"


def entry_lock(reentry: Reentry, entry_key: str) -> str:
    """The value of the unique ``entry_lock`` column that enforces a flow's re-entry rule."""
    if reentry == "never":
        return ONCE
    if reentry == "after_exit":
        return "active"
    return f"entry:{entry_key}"[:250]


async def claim_entry(
    store: Store,
    conn: AsyncConnection,
    *,
    journey_id: str,
    workspace_id: str,
    flow_id: str,
    version: int,
    profile_id: str,
    lock: str,
    trigger_event_id: str | None,
    started_at: datetime,
    into: events_store.SystemEvents | None = None,
) -> bool:
    """Record a new journey unless its id exists or the re-entry rule forbids it; True if recorded.
    Its ``flow_entered`` is written at once, or gathered ``into`` a batch the caller writes (one
    statement for all the claims of a transaction)."""
    statement = store.insert(journeys).on_conflict_do_nothing().returning(journeys.c.id)
    row = {
        "id": journey_id,
        "workspace_id": workspace_id,
        "flow_id": flow_id,
        "version": version,
        "profile_id": profile_id,
        "status": "running",
        "entry_lock": lock,
        "trigger_event_id": trigger_event_id,
        "started_at": started_at,
    }
    claimed = (await conn.execute(statement, row)).first() is not None
    if claimed:
        entered = into or events_store.SystemEvents(workspace_id)
        entered.add(
            event_id=entered_event_id(journey_id),
            profile_id=profile_id,
            name=events_store.FLOW_ENTERED,
            timestamp=started_at,
            properties={"flow_id": flow_id, "version": version, "journey_id": journey_id},
        )
        if into is None:
            await entered.write(conn)
    return claimed


def entered_event_id(journey_id: str) -> str:
    return f"{events_store.FLOW_ENTERED}-{journey_id}"


def exited_event_id(journey_id: str) -> str:
    return f"{events_store.FLOW_EXITED}-{journey_id}"


async def record_end(conn: AsyncConnection, end: JourneyEnd) -> bool:
    """Close the record and release its re-entry lock (except a 'never' lock, which is for good).

    False when the record is not visible: the transaction that creates it also starts the
    workflow, so a quick journey can end before that transaction commits. Callers retry.
    """
    if not await close_record(conn, end):
        return False
    # In the end's own transaction; routed by the sweeper (JourneyLauncher.sweep) like the other
    # events an activity writes. Not for an erased person: nothing personal is written after that.
    ref = end.journey
    if await profile_exists(conn, ref.workspace_id, ref.profile_id):
        exited = events_store.SystemEvents(ref.workspace_id)
        add_exited_event(exited, end)
        await exited.write(conn)
    return True


async def close_record(conn: AsyncConnection, end: JourneyEnd) -> bool:
    """``record_end`` without its ``flow_exited``: the record's UPDATE alone (False: not visible
    yet). A caller that knows the person exists in its transaction adds the event itself
    (``add_exited_event``) to a batch it writes."""
    result = await conn.execute(
        journeys.update()
        .where(journeys.c.id == end.journey.journey_id)
        .values(
            status=end.status,
            last_step=end.last_step,
            exit_reason=end.exit_reason,
            ended_at=end.ended_at,
            entry_lock=case((journeys.c.entry_lock == ONCE, ONCE), else_=None),
        )
    )
    return bool(result.rowcount)


def add_exited_event(into: events_store.SystemEvents, end: JourneyEnd) -> None:
    """The journey's ``flow_exited``, gathered into ``into``."""
    ref = end.journey
    into.add(
        event_id=exited_event_id(ref.journey_id),
        profile_id=ref.profile_id,
        name=events_store.FLOW_EXITED,
        timestamp=end.ended_at,
        properties={
            "flow_id": ref.flow_id,
            "journey_id": ref.journey_id,
            "exit_reason": end.exit_reason,
            "status": end.status,
        },
    )


async def status_of(conn: AsyncConnection, journey_id: str) -> str | None:
    found = await conn.scalar(select(journeys.c.status).where(journeys.c.id == journey_id))
    return None if found is None else str(found)


async def get_journey(conn: AsyncConnection, workspace_id: str, journey_id: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(
            select(journeys).where(journeys.c.workspace_id == workspace_id, journeys.c.id == journey_id)
        )
    ).first()
    return None if row is None else dict(row._mapping)


async def list_journeys(
    conn: AsyncConnection,
    workspace_id: str,
    *,
    flow_id: str | None = None,
    profile_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    query = select(journeys).where(journeys.c.workspace_id == workspace_id)
    if flow_id is not None:
        query = query.where(journeys.c.flow_id == flow_id)
    if profile_id is not None:
        query = query.where(journeys.c.profile_id == profile_id)
    query = query.order_by(journeys.c.started_at.desc(), journeys.c.id).limit(limit).offset(offset)
    return [dict(r._mapping) for r in await conn.execute(query)]


async def journeys_of_profiles(
    conn: AsyncConnection, workspace_id: str, profile_ids: Collection[str], *, unconverted_since: datetime
) -> list[dict[str, Any]]:
    """Journeys an event of these profiles may concern: those in flight, and those that ended but
    started after ``unconverted_since`` without converting (a goal may still count)."""
    query = select(
        journeys.c.id,
        journeys.c.flow_id,
        journeys.c.version,
        journeys.c.profile_id,
        journeys.c.status,
        journeys.c.trigger_event_id,
        journeys.c.started_at,
        journeys.c.converted_at,
    ).where(
        journeys.c.workspace_id == workspace_id,
        one_of(conn.dialect.name, journeys.c.profile_id, sorted(profile_ids)),
        (journeys.c.status == "running")
        | (journeys.c.converted_at.is_(None) & (journeys.c.started_at >= unconverted_since)),
    )
    return [dict(r._mapping) for r in await conn.execute(query)]


async def record_conversion(conn: AsyncConnection, journey_id: str, at: datetime, event_id: str) -> bool:
    """The journey's goal happened; only the first conversion counts. True if this one did."""
    result = await conn.execute(
        journeys.update()
        .where(journeys.c.id == journey_id, journeys.c.converted_at.is_(None))
        .values(converted_at=at, goal_event_id=event_id)
    )
    return bool(result.rowcount)


async def forget_claim(conn: AsyncConnection, journey_id: str) -> None:
    """Remove the record of a journey that never started (Temporal refused it)."""
    await conn.execute(journeys.delete().where(journeys.c.id == journey_id))
    await conn.execute(events.delete().where(events.c.id == entered_event_id(journey_id)))


async def claim_entries(store: Store, conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """``claim_entry`` for many journeys in two statements (the journeys, then their flow_entered
    events): rows have the keys of ``claim_entry``'s arguments. Returns the ids recorded now."""
    if not rows:
        return set()
    records = [
        {
            "id": r["journey_id"],
            "workspace_id": r["workspace_id"],
            "flow_id": r["flow_id"],
            "version": r["version"],
            "profile_id": r["profile_id"],
            "status": "running",
            "entry_lock": r["lock"],
            "trigger_event_id": r["trigger_event_id"],
            "started_at": r["started_at"],
        }
        for r in rows
    ]
    now = utcnow()
    statement = store.insert(journeys).on_conflict_do_nothing().returning(journeys.c.id)
    claimed = {str(i) for i in (await conn.execute(statement, records)).scalars()}
    entered = [
        {
            "workspace_id": r["workspace_id"],
            "id": entered_event_id(r["id"]),
            "profile_id": r["profile_id"],
            "name": events_store.FLOW_ENTERED,
            "timestamp": r["started_at"],
            "properties": {"flow_id": r["flow_id"], "version": r["version"], "journey_id": r["id"]},
            "received_at": now,
            "routed_at": None,
        }
        for r in records
        if r["id"] in claimed
    ]
    if entered:
        await conn.execute(store.insert(events).on_conflict_do_nothing(), entered)
        for workspace_id in {r["workspace_id"] for r in entered}:
            await export_events(conn, workspace_id, [r for r in entered if r["workspace_id"] == workspace_id])
    return claimed


async def existing_journeys(
    conn: AsyncConnection, workspace_id: str, journey_ids: Collection[str]
) -> set[str]:
    """Which of these journeys are recorded."""
    if not journey_ids:
        return set()
    query = select(journeys.c.id).where(
        journeys.c.workspace_id == workspace_id, journeys.c.id.in_(sorted(journey_ids))
    )
    return {str(i) for i in (await conn.execute(query)).scalars()}


async def running_journey_ids(conn: AsyncConnection, workspace_id: str, flow_id: str) -> list[str]:
    query = select(journeys.c.id).where(
        journeys.c.workspace_id == workspace_id, journeys.c.flow_id == flow_id, journeys.c.status == "running"
    )
    return [str(i) for i in (await conn.execute(query)).scalars()]


async def record_move(conn: AsyncConnection, journey_id: str, version: int) -> None:
    """A journey in flight moved to a newer version of its flow (idempotent). The visit it is in
    (recorded open before a wait) moves too: the stats show it at the new version's step; the
    visits it finished stay with the version it made them in."""
    await conn.execute(
        journeys.update()
        .where(journeys.c.id == journey_id, journeys.c.status == "running", journeys.c.version < version)
        .values(version=version)
    )
    await conn.execute(
        journey_steps.update()
        .where(
            journey_steps.c.journey_id == journey_id,
            journey_steps.c.left_at.is_(None),
            journey_steps.c.version < version,
        )
        .values(version=version)
    )


async def running_on_older_versions(
    conn: AsyncConnection, workspace_id: str, flow_id: str, version: int
) -> list[str]:
    """Journeys in flight on a version of the flow older than ``version``."""
    query = select(journeys.c.id).where(
        journeys.c.workspace_id == workspace_id,
        journeys.c.flow_id == flow_id,
        journeys.c.status == "running",
        journeys.c.version < version,
    )
    return [str(i) for i in (await conn.execute(query)).scalars()]


async def counts_by_version(
    conn: AsyncConnection, workspace_id: str, flow_id: str
) -> dict[int, tuple[int, int]]:
    """Per version of the flow: (journeys that entered it or moved to it, journeys in flight)."""
    running = func.sum(case((journeys.c.status == "running", 1), else_=0))
    query = (
        select(journeys.c.version, func.count(), running)
        .where(journeys.c.workspace_id == workspace_id, journeys.c.flow_id == flow_id)
        .group_by(journeys.c.version)
    )
    return {int(v): (int(n), int(r or 0)) for v, n, r in await conn.execute(query)}


async def in_flight_by_flow(
    conn: AsyncConnection, workspace_id: str, flow_id: str | None = None
) -> dict[str, int]:
    """Journeys in flight per flow of the workspace, or of ``flow_id`` (flows with none are left out)."""
    query = select(journeys.c.flow_id, func.count()).where(
        journeys.c.workspace_id == workspace_id, journeys.c.status == "running"
    )
    if flow_id is not None:
        query = query.where(journeys.c.flow_id == flow_id)
    query = query.group_by(journeys.c.flow_id)
    return {str(f): int(n) for f, n in await conn.execute(query)}


@dataclass(frozen=True)
class FlowEntries:
    """Journeys that entered a flow (all versions): since two moments, in all, and converted."""

    last_day: int = 0
    last_week: int = 0
    entered: int = 0
    converted: int = 0


async def entries_by_flow(conn: AsyncConnection, workspace_id: str, now: datetime) -> dict[str, FlowEntries]:
    """Per flow of the workspace that has journeys: entries in the 24 hours and 7 days before
    ``now``, all entries, and those that reached the flow's goal."""

    def since(start: datetime) -> Any:
        return func.sum(case((journeys.c.started_at >= start, 1), else_=0))

    converted = func.sum(case((journeys.c.converted_at.is_not(None), 1), else_=0))
    query = (
        select(
            journeys.c.flow_id,
            since(now - timedelta(days=1)),
            since(now - timedelta(days=7)),
            func.count(),
            converted,
        )
        .where(journeys.c.workspace_id == workspace_id)
        .group_by(journeys.c.flow_id)
    )
    return {
        str(flow_id): FlowEntries(int(day or 0), int(week or 0), int(total), int(won or 0))
        for flow_id, day, week, total, won in await conn.execute(query)
    }
