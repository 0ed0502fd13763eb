"""Events: stored once per id (ingestion is idempotent), then routed to flows and journeys."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, DateTime, and_, bindparam, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline import json_values
from flowline.store.database import Store, one_of, utcnow
from flowline.store.event_exports import export_events
from flowline.store.tables import event_routing_failures, events


async def insert_events(
    store: Store,
    conn: AsyncConnection,
    workspace_id: str,
    batch: Sequence[dict[str, Any]],
    *,
    routed: Collection[str] = frozenset(),
) -> set[str]:
    """Insert events that are not stored yet; returns the ids that were new.

    ``routed``: the ids of events that concern no flow nor journey, stored as routed at once
    (the others are routed after the transaction, see launch/routing.py).
    """
    if not batch:
        return set()
    now = utcnow()
    if store.dialect == "postgresql":
        stored = await _insert_from_json(conn, workspace_id, batch, routed, now)
    else:
        stored = await _insert_rows(store, conn, workspace_id, batch, routed, now)
    # In the same transaction: an event and its export records commit together.
    await export_events(conn, workspace_id, [e for e in batch if e["id"] in stored])
    return stored


_NEW_SQLITE = (
    "INSERT INTO events (workspace_id, id, profile_id, name, timestamp, properties, received_at, routed_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


async def insert_fresh_events(
    store: Store,
    conn: AsyncConnection,
    workspace_id: str,
    batch: Sequence[dict[str, Any]],
    *,
    routed: Collection[str] = frozenset(),
) -> None:
    """Insert events the engine writes under ids never used before (an import's profile_changed):
    ``insert_events`` without its duplicate check (``routed``: as there), and on SQLite through
    the driver's executemany (a tenth of SQLAlchemy's per-row processing)."""
    if not batch:
        return
    now = utcnow()
    if store.dialect == "postgresql":
        await _insert_from_json(conn, workspace_id, batch, routed, now)
    else:
        # As SQLAlchemy's DateTime stores times on SQLite (UTCDateTime: naive UTC).
        def stamp(moment: datetime) -> str:
            return moment.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")

        received = stamp(now)
        rows = [
            (
                workspace_id,
                e["id"],
                e["profile_id"],
                e["name"],
                stamp(e["timestamp"]),
                json_values.dumps(e.get("properties") or {}),
                received,
                received if e["id"] in routed else None,
            )
            for e in batch
        ]
        await conn.exec_driver_sql(_NEW_SQLITE, rows)
    await export_events(conn, workspace_id, batch)


async def _insert_rows(
    store: Store,
    conn: AsyncConnection,
    workspace_id: str,
    batch: Sequence[dict[str, Any]],
    routed: Collection[str],
    now: datetime,
) -> set[str]:
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


# PostgreSQL: the batch as one JSON document, so the statement's text stays short and the same
# for every batch, and one C-encoded string carries the rows. (A multi-row VALUES of 4,000
# parameters, which SQLAlchemy renders for executemany, is parsed anew by psycopg for every batch;
# arrays, one per column, cost a regular expression per element to escape.)
_FROM_JSON = text(
    "INSERT INTO events (workspace_id, id, profile_id, name, timestamp, properties, received_at, routed_at)"
    " SELECT :workspace_id, r.id, r.profile_id, r.name, r.timestamp, r.properties, :received_at, r.routed_at"
    " FROM json_to_recordset(CAST(:rows AS json))"
    " AS r(id text, profile_id text, name text, timestamp timestamptz, properties jsonb,"
    " routed_at timestamptz)"
    " ON CONFLICT DO NOTHING RETURNING id"
).bindparams(bindparam("received_at", type_=DateTime(timezone=True)))


async def _insert_from_json(
    conn: AsyncConnection,
    workspace_id: str,
    batch: Sequence[dict[str, Any]],
    routed: Collection[str],
    now: datetime,
) -> set[str]:
    stamp = now.isoformat()
    rows = []
    for e in batch:
        if e["timestamp"].tzinfo is None:
            raise ValueError("naive datetime given to the store")
        rows.append(
            {
                "id": e["id"],
                "profile_id": e["profile_id"],
                "name": e["name"],
                "timestamp": e["timestamp"].isoformat(),
                "properties": e.get("properties") or {},
                "routed_at": stamp if e["id"] in routed else None,
            }
        )
    parameters = {"workspace_id": workspace_id, "received_at": now, "rows": json_values.dumps(rows)}
    return {str(r) for r in (await conn.execute(_FROM_JSON, parameters)).scalars()}


# Events the engine writes itself about journeys (docs/engine-events.md#journeys): other flows
# may trigger on them, a flow never on its own, and only the sweeper routes them (they may start
# journeys). message_sent is the send activity's (flowline/channels/feedback.py record_sent).
FLOW_ENTERED = "flow_entered"
FLOW_EXITED = "flow_exited"
MESSAGE_SENT = "message_sent"
JOURNEY_EVENTS = frozenset({FLOW_ENTERED, FLOW_EXITED, MESSAGE_SENT})
# Every event the engine writes itself (flowline.flow.steps.waiting.PROFILE_CHANGED and
# flowline.flow.triggers.SEGMENT_*, named here to keep the store free of flow imports). Written by
# activities, nothing but the sweeper routes them, so it takes them after seconds, not the half
# minute it leaves the API's own routing of client events.
ENGINE_EVENTS = JOURNEY_EVENTS | {"profile_changed", "segment_entered", "segment_exited"}


class SystemEvents:
    """Events the engine writes, gathered over a transaction and stored by one multi-row INSERT
    (``write``) instead of one statement each: a journey's ``flow_entered`` for every claim of a
    batch, a send's ``message_sent`` with the journey's ``flow_exited``. Each is stored unrouted
    (the sweeper routes it) unless its deterministic id is stored already: a retried transaction
    writes each once. The caller has made sure the people exist (a profile written or
    read under lock in the same transaction): nothing here reads them again."""

    def __init__(self, workspace_id: str) -> None:
        self.workspace_id = workspace_id
        self.rows: list[dict[str, Any]] = []

    def add(
        self, *, event_id: str, profile_id: str, name: str, timestamp: datetime, properties: dict[str, Any]
    ) -> None:
        self.rows.append(
            {
                "workspace_id": self.workspace_id,
                "id": event_id,
                "profile_id": profile_id,
                "name": name,
                "timestamp": timestamp,
                "properties": properties,
                "received_at": utcnow(),
                "routed_at": None,
            }
        )

    async def write(self, conn: AsyncConnection) -> set[str]:
        """Store the events gathered (one statement; none when there are none); the ids stored now."""
        rows, self.rows = self.rows, []
        if not rows:
            return set()
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        statement = insert(events).on_conflict_do_nothing().returning(events.c.id)
        # Executemany with RETURNING: SQLAlchemy sends the rows as one multi-row INSERT whose
        # compiled form is cached.
        stored = {str(r) for r in (await conn.execute(statement, rows)).scalars()}
        await export_events(conn, self.workspace_id, rows)
        return stored


async def named_events(
    conn: AsyncConnection, workspace_id: str, profile_id: str, name: str, *, limit: int = 100_000
) -> list[dict[str, Any]]:
    """A profile's events of one name in timestamp order (ties by id)."""
    query = (
        select(events.c.id, events.c.timestamp, events.c.properties)
        .where(
            events.c.workspace_id == workspace_id,
            events.c.profile_id == profile_id,
            events.c.name == name,
        )
        .order_by(events.c.timestamp, events.c.id)
        .limit(limit)
    )
    return [dict(r._mapping) for r in await conn.execute(query)]


async def events_since(
    conn: AsyncConnection,
    workspace_id: str,
    profile_id: str,
    names: Sequence[str],
    since: datetime,
    *,
    limit: int = 1_000,
) -> list[dict[str, Any]]:
    """A profile's events of the given names from ``since`` on, oldest first (the newest ``limit``)."""
    query = (
        select(events.c.id, events.c.name, events.c.timestamp, events.c.properties)
        .where(
            events.c.workspace_id == workspace_id,
            events.c.profile_id == profile_id,
            events.c.name.in_(list(names)),
            events.c.timestamp >= since,
        )
        .order_by(events.c.timestamp.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in reversed((await conn.execute(query)).all())]


async def unrouted_events(
    conn: AsyncConnection, workspace_id: str, profile_ids: Sequence[str], *, limit: int = 1_000
) -> list[dict[str, Any]]:
    """Events of these profiles not routed yet (system events written beside a change), oldest first.

    Not flow_entered / flow_exited / message_sent: they may start journeys, which only the sweeper does for
    events written outside ``ingest`` (routing here reaches journeys in flight only)."""
    query = (
        select(events.c.id, events.c.profile_id, events.c.name, events.c.timestamp, events.c.properties)
        .where(
            events.c.workspace_id == workspace_id,
            events.c.profile_id.in_(list(profile_ids)),
            events.c.routed_at.is_(None),
            events.c.name.not_in(sorted(JOURNEY_EVENTS)),
        )
        .order_by(events.c.received_at, events.c.id)
        .limit(limit)
    )
    return [dict(r._mapping) for r in await conn.execute(query)]


async def mark_routed(conn: AsyncConnection, workspace_id: str, event_ids: Sequence[str]) -> None:
    if event_ids:
        await conn.execute(
            events.update()
            .where(events.c.workspace_id == workspace_id, one_of(conn.dialect.name, events.c.id, event_ids))
            .values(routed_at=utcnow())
        )


async def unrouted_by_id(
    conn: AsyncConnection,
    workspace_id: str,
    event_ids: Sequence[str],
    *,
    settled_before: datetime | None = None,
) -> list[dict[str, Any]]:
    """Those of these (stored) events that are not routed yet, as stored. With
    ``settled_before``: only those received before it, or whose routing failed (the others may be
    in the hands of the process that stored them, routing them now)."""
    if not event_ids:
        return []
    query = (
        select(events.c.id, events.c.profile_id, events.c.name, events.c.timestamp, events.c.properties)
        .where(
            events.c.workspace_id == workspace_id,
            one_of(conn.dialect.name, events.c.id, event_ids),
            events.c.routed_at.is_(None),
        )
        .order_by(events.c.received_at, events.c.id)
    )
    if settled_before is not None:
        failed = (
            select(event_routing_failures.c.event_id)
            .where(
                event_routing_failures.c.workspace_id == workspace_id,
                event_routing_failures.c.event_id == events.c.id,
            )
            .exists()
        )
        query = query.where(or_(events.c.received_at < settled_before, failed))
    return [dict(r._mapping) for r in await conn.execute(query)]


async def record_routing_failure(
    store: Store, conn: AsyncConnection, workspace_id: str, event_ids: Sequence[str]
) -> None:
    """These events' routing failed: a resend routes them at once (``unrouted_by_id``)."""
    if event_ids:
        now = utcnow()
        rows = [{"workspace_id": workspace_id, "event_id": e, "failed_at": now} for e in event_ids]
        await conn.execute(store.insert(event_routing_failures).values(rows).on_conflict_do_nothing())


async def stale_unrouted(
    conn: AsyncConnection,
    *,
    before: datetime,
    limit: int,
    workspace_id: str | None = None,
    engine_before: datetime | None = None,
) -> list[dict[str, Any]]:
    """Events (of every workspace, or of one) received before ``before`` (``ENGINE_EVENTS``:
    before ``engine_before`` when given) and still not routed, oldest first."""
    query = (
        select(
            events.c.workspace_id,
            events.c.id,
            events.c.profile_id,
            events.c.name,
            events.c.timestamp,
            events.c.properties,
        )
        .where(events.c.routed_at.is_(None), _stale(before, engine_before))
        .order_by(events.c.received_at, events.c.id)
        .limit(limit)
    )
    if workspace_id is not None:
        query = query.where(events.c.workspace_id == workspace_id)
    return [dict(r._mapping) for r in await conn.execute(query)]


def _stale(before: datetime, engine_before: datetime | None) -> ColumnElement[bool]:
    if engine_before is None or engine_before <= before:
        return events.c.received_at < before
    # received_at < engine_before first: the partial index of unrouted events serves the scan.
    return and_(
        events.c.received_at < engine_before,
        or_(events.c.received_at < before, events.c.name.in_(sorted(ENGINE_EVENTS))),
    )
