"""Segment membership: who is in each segment, kept by re-evaluating its rule, and the system
events that tell who entered (``segment_entered``) and who left (``segment_exited``).

The first computation of a segment is its baseline: the people in it then are members without
having "entered" (no events), so a segment_entry flow starts only for people who enter later.
Afterwards each re-evaluation (for some profiles after new data, or for everyone as time passes)
diffs the rule's answer against the stored membership, in one query that returns only the
differences, under a lock on the segment's row (evaluations of one segment run one at a time). A
membership row is inserted or deleted one by one and its event is written only by the statement
that changed the row; the event id derives from (segment, profile, event, evaluation time), so an
evaluation retried with the same time stores no second event. The events are stored unrouted:
the caller routes them (JourneyLauncher.dispatch), which starts segment_entry flows and stops
journeys whose stop_when names the segment.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.conditions.rules import Condition
from flowline.flow.triggers import SEGMENT_ENTERED, SEGMENT_EXITED
from flowline.store import segments_query
from flowline.store.database import Store, utcnow
from flowline.store.event_exports import export_events
from flowline.store.tables import events, segment_members, segments

log = logging.getLogger(__name__)
_RULE: TypeAdapter[Condition] = TypeAdapter(Condition)
_CHUNK = 1_000


@dataclass(frozen=True)
class SavedSegment:
    workspace_id: str
    segment_id: str
    rule: Condition
    # None until the baseline is computed.
    evaluated_at: datetime | None


def _saved(row: Any) -> SavedSegment:
    return SavedSegment(row.workspace_id, row.id, _RULE.validate_python(row.rule), row.evaluated_at)


async def saved_segments(conn: AsyncConnection, workspace_id: str | None = None) -> list[SavedSegment]:
    """The segments of a workspace (None: of every workspace, for the clock), by id."""
    query = select(segments.c.workspace_id, segments.c.id, segments.c.rule, segments.c.evaluated_at)
    if workspace_id is not None:
        query = query.where(segments.c.workspace_id == workspace_id)
    rows = await conn.execute(query.order_by(segments.c.workspace_id, segments.c.id))
    found = []
    for row in rows:
        try:
            found.append(_saved(row))
        except ValidationError as error:
            # A rule stored before a check that now refuses it (a NaN value made null by migration
            # 0018, a stricter rule): the others are still evaluated; saving the segment anew fixes it.
            log.warning(
                "segment %s of workspace %s skipped: its stored rule is not valid (%d faults: %s)",
                row.id,
                row.workspace_id,
                error.error_count(),
                error.errors()[0]["msg"],
            )
    return found


async def saved_segment(conn: AsyncConnection, workspace_id: str, segment_id: str) -> SavedSegment | None:
    query = select(segments.c.workspace_id, segments.c.id, segments.c.rule, segments.c.evaluated_at).where(
        segments.c.workspace_id == workspace_id, segments.c.id == segment_id
    )
    row = (await conn.execute(query)).first()
    return None if row is None else _saved(row)


async def members_of(
    conn: AsyncConnection, workspace_id: str, segment_id: str, profile_ids: Collection[str] | None = None
) -> dict[str, datetime]:
    """Stored members (profile id -> entered_at), among ``profile_ids`` when given."""
    query = select(segment_members.c.profile_id, segment_members.c.entered_at).where(
        segment_members.c.workspace_id == workspace_id, segment_members.c.segment_id == segment_id
    )
    if profile_ids is not None:
        query = query.where(segment_members.c.profile_id.in_(sorted(profile_ids)))
    return {str(r.profile_id): r.entered_at for r in await conn.execute(query)}


async def segments_of(conn: AsyncConnection, workspace_id: str, profile_id: str) -> list[str]:
    """The segments a person is in, as last evaluated."""
    query = (
        select(segment_members.c.segment_id)
        .where(segment_members.c.workspace_id == workspace_id, segment_members.c.profile_id == profile_id)
        .order_by(segment_members.c.segment_id)
    )
    return [str(s) for s in (await conn.execute(query)).scalars()]


async def baseline(store: Store, conn: AsyncConnection, segment: SavedSegment, now: datetime) -> None:
    """Compute the membership from scratch, writing no events (a new segment, or one saved before
    membership was kept)."""
    ws, sid = segment.workspace_id, segment.segment_id
    found = sorted(await segments_query.matching(conn, ws, segment.rule, now))
    await conn.execute(
        segment_members.delete().where(
            segment_members.c.workspace_id == ws, segment_members.c.segment_id == sid
        )
    )
    for start in range(0, len(found), _CHUNK):
        rows = [
            {"workspace_id": ws, "segment_id": sid, "profile_id": p, "entered_at": now}
            for p in found[start : start + _CHUNK]
        ]
        await conn.execute(segment_members.insert(), rows)
    await conn.execute(
        segments.update().where(segments.c.workspace_id == ws, segments.c.id == sid).values(evaluated_at=now)
    )


async def reevaluate(
    store: Store,
    conn: AsyncConnection,
    segment: SavedSegment,
    now: datetime,
    profile_ids: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """Bring the membership up to date for ``profile_ids`` (None: everyone), in the caller's
    transaction, and return the segment_entered / segment_exited events written (stored
    unrouted). A segment without a baseline gets one instead (no events). The segment's row is
    locked first, so evaluations of one segment run one after the other, and its rule is read
    again under the lock (``segment`` names it)."""
    locked = await _lock(conn, segment.workspace_id, segment.segment_id)
    if locked is None:
        return []  # deleted meanwhile
    segment = locked
    if segment.evaluated_at is None:
        await baseline(store, conn, segment, now)
        return []
    ws, sid = segment.workspace_id, segment.segment_id
    entering, leaving = await segments_query.membership_changes(conn, ws, sid, segment.rule, now, profile_ids)
    written = []
    for profile_id in entering:
        inserted = await conn.execute(
            store.insert(segment_members)
            .values(workspace_id=ws, segment_id=sid, profile_id=profile_id, entered_at=now)
            .on_conflict_do_nothing()
        )
        if inserted.rowcount:
            written.append(await _write_event(store, conn, ws, sid, profile_id, SEGMENT_ENTERED, now))
    for profile_id, entered_at in leaving.items():
        deleted = await conn.execute(
            segment_members.delete().where(
                segment_members.c.workspace_id == ws,
                segment_members.c.segment_id == sid,
                segment_members.c.profile_id == profile_id,
                segment_members.c.entered_at == entered_at,
            )
        )
        if deleted.rowcount:
            written.append(await _write_event(store, conn, ws, sid, profile_id, SEGMENT_EXITED, now))
    return written


async def update_membership(
    store: Store, segment: SavedSegment, now: datetime, profile_ids: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """``reevaluate`` in a transaction of its own, writing only when something changed: a
    read-only check first (the usual answer after new data is "nothing changed", and SQLite has
    one writer), then, if anything did, the locked re-evaluation."""
    if segment.evaluated_at is not None:
        async with store.connect() as conn:
            entering, leaving = await segments_query.membership_changes(
                conn, segment.workspace_id, segment.segment_id, segment.rule, now, profile_ids
            )
        if not entering and not leaving:
            return []
    async with store.begin() as conn:
        return await reevaluate(store, conn, segment, now, profile_ids)


async def _lock(conn: AsyncConnection, workspace_id: str, segment_id: str) -> SavedSegment | None:
    """Lock the segment's row for the rest of the transaction and read it. A write comes first:
    on SQLite it takes the write lock before any read, so a concurrent writer makes this wait
    (busy_timeout) instead of failing on a stale read snapshot; on PostgreSQL it is a row lock."""
    await conn.execute(
        segments.update()
        .where(segments.c.workspace_id == workspace_id, segments.c.id == segment_id)
        .values(evaluated_at=segments.c.evaluated_at)
    )
    return await saved_segment(conn, workspace_id, segment_id)


def segment_event_id(segment_id: str, profile_id: str, name: str, now: datetime) -> str:
    raw = "\x1f".join((segment_id, profile_id, name, now.isoformat())).encode()
    digest = base64.b32encode(hashlib.sha256(raw).digest()).decode().lower().rstrip("=")
    return f"{name}-{digest[:32]}"


async def _write_event(
    store: Store,
    conn: AsyncConnection,
    workspace_id: str,
    segment_id: str,
    profile_id: str,
    name: str,
    now: datetime,
) -> dict[str, Any]:
    row = {
        "workspace_id": workspace_id,
        "id": segment_event_id(segment_id, profile_id, name, now),
        "profile_id": profile_id,
        "name": name,
        "timestamp": now,
        "properties": {"segment": segment_id},
        "received_at": utcnow(),
        # NULL until the caller routes it.
        "routed_at": None,
    }
    await conn.execute(store.insert(events).on_conflict_do_nothing(), row)
    await export_events(conn, workspace_id, [row])
    return row
