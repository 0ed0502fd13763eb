"""The facts conditions are evaluated over, for one profile, read from the store."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, literal, null, select, text, type_coerce, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.conditions.facts import ContactBlock, EventFact, FlowMembership, ProfileFacts
from flowline.store.tables import events, journeys, profiles, workspaces


def _contact_blocks(raw: Any) -> tuple[ContactBlock, ...]:
    entries = raw if isinstance(raw, list) else []
    return tuple(
        ContactBlock(str(e["channel"]), e.get("sender"))
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("channel"), str)
    )


def _facts_query(workspace_id: str, profile_id: str, names: list[str]) -> Any:
    """One round trip: a first row (part 0) with the workspace's time zone and the profile (an
    outer join: the profile may not be stored yet), then its events named ``names`` (part 1)
    in time order. Null columns are typed in the first row, which types the whole result."""
    head = (
        select(
            literal(0).label("part"),
            workspaces.c.timezone,
            profiles.c.attributes,
            profiles.c.tags,
            profiles.c.do_not_contact,
            type_coerce(null(), events.c.name.type).label("name"),
            type_coerce(null(), events.c.timestamp.type).label("timestamp"),
            type_coerce(null(), events.c.properties.type).label("properties"),
            type_coerce(null(), events.c.id.type).label("event_id"),
        )
        .select_from(
            workspaces.outerjoin(
                profiles, and_(profiles.c.workspace_id == workspaces.c.id, profiles.c.id == profile_id)
            )
        )
        .where(workspaces.c.id == workspace_id)
    )
    if not names:
        return head
    own_events = select(
        literal(1),
        null(),
        null(),
        null(),
        null(),
        events.c.name,
        events.c.timestamp,
        events.c.properties,
        events.c.id,
    ).where(
        events.c.workspace_id == workspace_id, events.c.profile_id == profile_id, events.c.name.in_(names)
    )
    return union_all(head, own_events).order_by(text("part"), text("timestamp"), text("event_id"))


async def load_profile_facts(
    conn: AsyncConnection,
    workspace_id: str,
    profile_id: str,
    *,
    event_names: Iterable[str] = (),
    flow_ids: Iterable[str] = (),
) -> ProfileFacts:
    """The profile (attributes, tags, do-not-contact), its events named ``event_names`` and its
    journeys in ``flow_ids``. A profile not stored yet has no attributes, tags or opt-outs. The
    time zone is the profile's ``timezone`` attribute, else the workspace's, else UTC."""
    names, flows = sorted(set(event_names)), sorted(set(flow_ids))
    rows = list(await conn.execute(_facts_query(workspace_id, profile_id, names)))
    head = rows[0] if rows and rows[0].part == 0 else None
    workspace_zone = head.timezone if head else None
    row = head if head is not None and head.attributes is not None else None
    attributes: dict[str, Any] = dict(row.attributes) if row else {}
    tags = frozenset(str(t) for t in row.tags) if row and isinstance(row.tags, list) else frozenset()
    blocks = _contact_blocks(row.do_not_contact) if row else ()
    found_events = tuple(EventFact(r.name, r.timestamp, r.properties or {}) for r in rows if r.part == 1)
    memberships: tuple[FlowMembership, ...] = ()
    if flows:
        query = (
            select(journeys.c.flow_id, journeys.c.status, journeys.c.started_at, journeys.c.ended_at)
            .where(
                journeys.c.workspace_id == workspace_id,
                journeys.c.profile_id == profile_id,
                journeys.c.flow_id.in_(flows),
            )
            .order_by(journeys.c.started_at, journeys.c.id)
        )
        memberships = tuple(
            FlowMembership(r.flow_id, r.status, r.started_at, r.ended_at) for r in await conn.execute(query)
        )
    own = attributes.get("timezone")  # as workspaces.person_zone: the person's, else the workspace's
    zone_name = own if isinstance(own, str) and own else workspace_zone
    return ProfileFacts(
        attributes=attributes,
        tags=tags,
        do_not_contact=blocks,
        events=found_events,
        flows=memberships,
        timezone=zone_name or "UTC",
    )
