"""The facts conditions are evaluated over, for one profile, read from the store."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, select
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
    # The workspace's time zone in the same round trip (an outer join: the profile may not exist).
    found = (
        await conn.execute(
            select(workspaces.c.timezone, profiles.c.attributes, profiles.c.tags, profiles.c.do_not_contact)
            .select_from(
                workspaces.outerjoin(
                    profiles,
                    and_(profiles.c.workspace_id == workspaces.c.id, profiles.c.id == profile_id),
                )
            )
            .where(workspaces.c.id == workspace_id)
        )
    ).first()
    workspace_zone = found.timezone if found else None
    row = found if found is not None and found.attributes is not None else None
    attributes: dict[str, Any] = dict(row.attributes) if row else {}
    tags = frozenset(str(t) for t in row.tags) if row and isinstance(row.tags, list) else frozenset()
    blocks = _contact_blocks(row.do_not_contact) if row else ()

    names, flows = sorted(set(event_names)), sorted(set(flow_ids))
    found_events: tuple[EventFact, ...] = ()
    if names:
        query = (
            select(events.c.name, events.c.timestamp, events.c.properties)
            .where(
                events.c.workspace_id == workspace_id,
                events.c.profile_id == profile_id,
                events.c.name.in_(names),
            )
            .order_by(events.c.timestamp, events.c.id)
        )
        found_events = tuple(
            EventFact(r.name, r.timestamp, r.properties or {}) for r in await conn.execute(query)
        )
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
