"""Segments: named rules of the condition language; members are computed in SQL when asked."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.flow.document import FlowDocument
from flowline.flow.flow_settings import SegmentStop
from flowline.flow.triggers import AudienceTrigger, SegmentEntryTrigger
from flowline.flow.validation import FlowFault
from flowline.store.database import Store, utcnow
from flowline.store.tables import segments


async def put_segment(
    store: Store, conn: AsyncConnection, workspace_id: str, segment_id: str, name: str, rule: dict[str, Any]
) -> None:
    """Create or replace the segment (``rule`` is a validated condition in its JSON form)."""
    now = utcnow()
    statement = store.insert(segments).values(
        workspace_id=workspace_id, id=segment_id, name=name, rule=rule, created_at=now, updated_at=now
    )
    statement = statement.on_conflict_do_update(
        index_elements=[segments.c.workspace_id, segments.c.id],
        set_={"name": name, "rule": rule, "updated_at": now},
    )
    await conn.execute(statement)


async def get_segment(conn: AsyncConnection, workspace_id: str, segment_id: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(
            select(segments).where(segments.c.workspace_id == workspace_id, segments.c.id == segment_id)
        )
    ).first()
    return None if row is None else dict(row._mapping)


async def list_segments(conn: AsyncConnection, workspace_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(segments).where(segments.c.workspace_id == workspace_id).order_by(segments.c.id)
    )
    return [dict(r._mapping) for r in rows]


async def segment_faults(conn: AsyncConnection, workspace_id: str, document: FlowDocument) -> list[FlowFault]:
    """The segments a flow names (segment_entry or audience trigger, stop_when) that do not exist:
    publishing it would wait for entries that can never come."""
    named: list[tuple[str, str]] = []
    if isinstance(document.trigger, SegmentEntryTrigger):
        named.append(("$.trigger.segment", document.trigger.segment))
    if isinstance(document.trigger, AudienceTrigger) and document.trigger.segment is not None:
        named.append(("$.trigger.segment", document.trigger.segment))
    for index, stop in enumerate(document.settings.stop_when):
        if isinstance(stop, SegmentStop):
            named.append((f"$.settings.stop_when[{index}].segment", stop.segment))
    if not named:
        return []
    query = select(segments.c.id).where(
        segments.c.workspace_id == workspace_id, segments.c.id.in_({s for _, s in named})
    )
    found = set((await conn.execute(query)).scalars())
    return [FlowFault(path, f"no segment {segment!r}") for path, segment in named if segment not in found]
