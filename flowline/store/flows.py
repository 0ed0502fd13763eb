"""Flows: a mutable draft plus immutable published versions."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.flow.document import FlowDocument
from flowline.flow.trigger_match import trigger_event
from flowline.store.database import Store, utcnow
from flowline.store.tables import flow_versions, flows, workspaces

# A flow without end_at takes entries for a year after the version was published.
DEFAULT_LIFETIME = timedelta(days=365)
FlowStatus = Literal["draft", "running", "draining", "stopped", "finished"]


@dataclass(frozen=True)
class PublishedFlow:
    flow_id: str
    version: int
    document: FlowDocument
    published_at: datetime | None = None

    def closed_reason(self, now: datetime) -> str | None:
        """Why the flow takes no entries at ``now`` (its start_at / end_at window), or None."""
        settings = self.document.settings
        if settings.start_at is not None and now < settings.start_at:
            return f"flow {self.flow_id!r} takes entries from {settings.start_at.isoformat()}"
        end = self.entries_end()
        if end is not None and now >= end:
            return f"flow {self.flow_id!r} took entries until {end.isoformat()}"
        return None

    def entries_end(self) -> datetime | None:
        """When the flow stops taking entries: end_at, else a year after publishing."""
        end = self.document.settings.end_at
        if end is None and self.published_at is not None:
            end = self.published_at + DEFAULT_LIFETIME
        return end


async def save_draft(
    store: Store, conn: AsyncConnection, workspace_id: str, flow: FlowDocument
) -> dict[str, Any]:
    now = utcnow()
    statement = store.insert(flows).values(
        workspace_id=workspace_id,
        id=flow.id,
        name=flow.name,
        status="draft",
        draft=flow.dump(),
        created_at=now,
        updated_at=now,
    )
    statement = statement.on_conflict_do_update(
        index_elements=[flows.c.workspace_id, flows.c.id],
        set_={"name": flow.name, "draft": flow.dump(), "updated_at": now},
    )
    await conn.execute(statement)
    row = await get_flow(conn, workspace_id, flow.id)
    assert row is not None
    return row


async def get_flow(conn: AsyncConnection, workspace_id: str, flow_id: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(select(flows).where(flows.c.workspace_id == workspace_id, flows.c.id == flow_id))
    ).first()
    return None if row is None else dict(row._mapping)


async def list_flows(conn: AsyncConnection, workspace_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(select(flows).where(flows.c.workspace_id == workspace_id).order_by(flows.c.id))
    return [dict(r._mapping) for r in rows]


async def publish(conn: AsyncConnection, workspace_id: str, flow_id: str, flow: FlowDocument) -> int:
    """Freeze ``flow`` as the next version and make it the one new journeys use."""
    # Lock the flow row so that two concurrent publishes cannot take the same number.
    await conn.execute(
        flows.update()
        .where(flows.c.workspace_id == workspace_id, flows.c.id == flow_id)
        .values(updated_at=utcnow())
    )
    latest = await conn.scalar(
        select(func.max(flow_versions.c.version)).where(
            flow_versions.c.workspace_id == workspace_id, flow_versions.c.flow_id == flow_id
        )
    )
    version = (latest or 0) + 1
    trigger = flow.trigger
    await conn.execute(
        flow_versions.insert().values(
            workspace_id=workspace_id,
            flow_id=flow_id,
            version=version,
            document=flow.dump(),
            trigger_type=trigger.type,
            trigger_event=trigger_event(trigger),
            published_at=utcnow(),
        )
    )
    await conn.execute(
        flows.update()
        .where(flows.c.workspace_id == workspace_id, flows.c.id == flow_id)
        .values(status="running", current_version=version)
    )
    return version


async def routing_generation(conn: AsyncConnection, workspace_id: str) -> int:
    """The workspace's routing generation, read so that no publish, stop or drain (nor segment
    save) commits while the caller's transaction runs. On PostgreSQL the row is share-locked until
    it ends (``bump_routing_generation`` waits for it, or it waits for one in progress and reads
    its value). On SQLite it is read by a write that changes nothing: the driver begins the
    transaction at its first write only, so this takes the one writer's lock at once (a plain
    read would run before the transaction, and another process could commit in between). Flows
    and segments read later in the same transaction are as of this generation."""
    if conn.dialect.name == "sqlite":
        found = await conn.scalar(
            workspaces.update()
            .where(workspaces.c.id == workspace_id)
            .values(routing_generation=workspaces.c.routing_generation)
            .returning(workspaces.c.routing_generation)
        )
    else:
        found = await conn.scalar(
            select(workspaces.c.routing_generation)
            .where(workspaces.c.id == workspace_id)
            .with_for_update(read=True)
        )
    return int(found or 0)


async def bump_routing_generation(conn: AsyncConnection, workspace_id: str) -> None:
    """Tell every process that the flows an event can start (or the segments) changed. Call it
    last in the transaction that changes them: it waits for the event transactions in flight of
    the workspace (``routing_generation``) and holds theirs off until the commit."""
    await conn.execute(
        workspaces.update()
        .where(workspaces.c.id == workspace_id)
        .values(routing_generation=workspaces.c.routing_generation + 1)
    )


async def flow_status(conn: AsyncConnection, workspace_id: str, flow_id: str) -> FlowStatus | None:
    """The flow's stored status (lifecycle.py shows ``finished`` on top), None if there is no flow."""
    found = await conn.scalar(
        select(flows.c.status).where(flows.c.workspace_id == workspace_id, flows.c.id == flow_id)
    )
    return None if found is None else found


async def flow_statuses(
    conn: AsyncConnection, workspace_id: str, flow_ids: Collection[str]
) -> dict[str, FlowStatus]:
    """The stored status of each of these flows (those that exist)."""
    rows = await conn.execute(
        select(flows.c.id, flows.c.status).where(
            flows.c.workspace_id == workspace_id, flows.c.id.in_(sorted(flow_ids))
        )
    )
    return {str(r.id): r.status for r in rows}


async def set_status(conn: AsyncConnection, workspace_id: str, flow_id: str, status: FlowStatus) -> bool:
    """Move a flow to ``status`` (no checks of the lifecycle here); False if there is no such flow."""
    result = await conn.execute(
        flows.update()
        .where(flows.c.workspace_id == workspace_id, flows.c.id == flow_id)
        .values(status=status, updated_at=utcnow())
    )
    return bool(result.rowcount)


async def last_published(conn: AsyncConnection, workspace_id: str) -> dict[str, datetime]:
    """When each published flow of the workspace last published a version."""
    query = (
        select(flow_versions.c.flow_id, func.max(flow_versions.c.published_at))
        .where(flow_versions.c.workspace_id == workspace_id)
        .group_by(flow_versions.c.flow_id)
    )
    return {str(flow_id): at for flow_id, at in await conn.execute(query)}


async def list_versions(conn: AsyncConnection, workspace_id: str, flow_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(flow_versions.c.version, flow_versions.c.published_at, flow_versions.c.trigger_type)
        .where(flow_versions.c.workspace_id == workspace_id, flow_versions.c.flow_id == flow_id)
        .order_by(flow_versions.c.version)
    )
    return [dict(r._mapping) for r in rows]


async def current_version(conn: AsyncConnection, workspace_id: str, flow_id: str) -> PublishedFlow | None:
    row = (
        await conn.execute(
            select(
                flow_versions.c.flow_id,
                flow_versions.c.version,
                flow_versions.c.document,
                flow_versions.c.published_at,
            )
            .join(
                flows,
                (flows.c.workspace_id == flow_versions.c.workspace_id)
                & (flows.c.id == flow_versions.c.flow_id)
                & (flows.c.current_version == flow_versions.c.version),
            )
            .where(flows.c.workspace_id == workspace_id, flows.c.id == flow_id, flows.c.status == "running")
        )
    ).first()
    if row is None:
        return None
    return PublishedFlow(
        row.flow_id, row.version, FlowDocument.model_validate(row.document), row.published_at
    )


async def published_flows(
    conn: AsyncConnection, workspace_id: str, flow_id: str | None = None
) -> dict[str, PublishedFlow]:
    """The current version of each published flow of the workspace (or of ``flow_id``), whatever
    the flow's status."""
    query = select(
        flow_versions.c.flow_id,
        flow_versions.c.version,
        flow_versions.c.document,
        flow_versions.c.published_at,
    ).join(
        flows,
        (flows.c.workspace_id == flow_versions.c.workspace_id)
        & (flows.c.id == flow_versions.c.flow_id)
        & (flows.c.current_version == flow_versions.c.version),
    )
    query = query.where(flows.c.workspace_id == workspace_id)
    if flow_id is not None:
        query = query.where(flows.c.id == flow_id)
    return {
        r.flow_id: PublishedFlow(
            r.flow_id, r.version, FlowDocument.model_validate(r.document), r.published_at
        )
        for r in await conn.execute(query)
    }


async def current_trigger_type(conn: AsyncConnection, workspace_id: str, flow_id: str) -> str | None:
    """The trigger type of the flow's current version (whatever the flow's status), if published."""
    found = await conn.scalar(
        select(flow_versions.c.trigger_type)
        .join(
            flows,
            (flows.c.workspace_id == flow_versions.c.workspace_id)
            & (flows.c.id == flow_versions.c.flow_id)
            & (flows.c.current_version == flow_versions.c.version),
        )
        .where(flows.c.workspace_id == workspace_id, flows.c.id == flow_id)
    )
    return None if found is None else str(found)


async def event_triggered_flows(conn: AsyncConnection, workspace_id: str) -> list[PublishedFlow]:
    """The running flows of a workspace (their current versions) that an event can start (event,
    profile_change and segment_entry triggers)."""
    rows = await conn.execute(
        select(
            flow_versions.c.flow_id,
            flow_versions.c.version,
            flow_versions.c.document,
            flow_versions.c.published_at,
        )
        .join(
            flows,
            (flows.c.workspace_id == flow_versions.c.workspace_id)
            & (flows.c.id == flow_versions.c.flow_id)
            & (flows.c.current_version == flow_versions.c.version),
        )
        .where(
            flow_versions.c.workspace_id == workspace_id,
            flow_versions.c.trigger_event.is_not(None),
            flows.c.status == "running",
        )
        .order_by(flow_versions.c.flow_id)
    )
    return [
        PublishedFlow(r.flow_id, r.version, FlowDocument.model_validate(r.document), r.published_at)
        for r in rows
    ]


async def version_documents(
    conn: AsyncConnection, workspace_id: str, keys: Collection[tuple[str, int]]
) -> dict[tuple[str, int], FlowDocument]:
    """The documents of the given (flow id, version) pairs."""
    if not keys:
        return {}
    flow_ids = sorted({flow_id for flow_id, _ in keys})
    rows = await conn.execute(
        select(flow_versions.c.flow_id, flow_versions.c.version, flow_versions.c.document).where(
            flow_versions.c.workspace_id == workspace_id, flow_versions.c.flow_id.in_(flow_ids)
        )
    )
    wanted = set(keys)
    return {
        (r.flow_id, r.version): FlowDocument.model_validate(r.document)
        for r in rows
        if (r.flow_id, r.version) in wanted
    }
