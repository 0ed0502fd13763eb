"""The parts of a trigger that read the store: the profile condition (event and profile_change
triggers), event-to-profile matching and occurrence counting (event triggers). Asked only for
events the trigger already admits by themselves (flowline/flow/trigger_match.py), in the
transaction that claims the journey."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.conditions import matches_all
from flowline.conditions.evaluate import evaluate, needs
from flowline.conditions.rules import Condition
from flowline.flow.triggers import EventTrigger, ProfileChangeTrigger, SegmentEntryTrigger
from flowline.journey import TriggerEvent
from flowline.store.events import named_events
from flowline.store.profile_facts import load_profile_facts

log = logging.getLogger(__name__)
_MISSING: Any = object()


async def trigger_admits(
    conn: AsyncConnection,
    workspace_id: str,
    trigger: EventTrigger | ProfileChangeTrigger | SegmentEntryTrigger,
    profile_id: str,
    event: TriggerEvent,
    now: datetime,
) -> bool:
    """Whether ``event`` (stored already) starts a journey for ``profile_id`` by ``trigger``."""
    if isinstance(trigger, SegmentEntryTrigger):
        return True
    if isinstance(trigger, ProfileChangeTrigger):
        return await _profile_holds(conn, workspace_id, trigger.profile, profile_id, now)
    if trigger.profile is not None or trigger.match:
        needed = needs([trigger.profile] if trigger.profile is not None else [])
        facts = await load_profile_facts(
            conn, workspace_id, profile_id, event_names=needed.events, flow_ids=needed.flows
        )
        for pair in trigger.match:
            expected = facts.attributes.get(pair.profile_attribute, _MISSING)
            actual = event.properties.get(pair.event_property, _MISSING)
            if expected is _MISSING or actual is _MISSING or expected != actual:
                return False
        if trigger.profile is not None:
            try:
                if not evaluate(trigger.profile, facts, now):
                    return False
            except Exception as error:  # an unusable condition keeps the person out
                log.warning("trigger condition failed for %s: %s", profile_id, error)
                return False
    if trigger.occurrence is not None:
        return trigger.occurrence.admits(await _position(conn, workspace_id, trigger, profile_id, event))
    return True


async def _position(
    conn: AsyncConnection, workspace_id: str, trigger: EventTrigger, profile_id: str, event: TriggerEvent
) -> int:
    """Where ``event`` comes (1-based) among the profile's events of the trigger's name that pass
    ``where``, in timestamp order; 0 when it is not stored (then nothing admits it)."""
    position = 0
    for row in await named_events(conn, workspace_id, profile_id, trigger.event):
        if matches_all(trigger.where, row["properties"] or {}):
            position += 1
        if row["id"] == event.id:
            return position
    return 0


async def _profile_holds(
    conn: AsyncConnection, workspace_id: str, condition: Condition | None, profile_id: str, now: datetime
) -> bool:
    if condition is None:
        return True
    needed = needs([condition])
    facts = await load_profile_facts(
        conn, workspace_id, profile_id, event_names=needed.events, flow_ids=needed.flows
    )
    try:
        return bool(evaluate(condition, facts, now))
    except Exception as error:  # an unusable condition keeps the person out
        log.warning("trigger condition failed for %s: %s", profile_id, error)
        return False
