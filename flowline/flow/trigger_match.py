"""Which event starts a journey of a flow, per trigger type: one exhaustive dispatch.

``admits`` is the part that needs only the event (name, properties); the profile condition,
event-to-profile matching and occurrence counting read the store (flowline/store/trigger_gate.py).
"""

from __future__ import annotations

from typing import Any, assert_never

from flowline.conditions import matches_all
from flowline.flow.steps.waiting import PROFILE_CHANGED
from flowline.flow.triggers import (
    SEGMENT_ENTERED,
    AudienceTrigger,
    DateTrigger,
    EventTrigger,
    FlowTrigger,
    ProfileChangeTrigger,
    SegmentEntryTrigger,
    Trigger,
)

# The engine's own journey events (flowline/store/events.py): a flow's own never start it again
# (a flow triggered by message_sent would otherwise restart on each of its own messages).
_JOURNEY_EVENTS = frozenset({"flow_entered", "flow_exited", "message_sent"})
_MISSING: Any = object()


def trigger_event(trigger: Trigger) -> str | None:
    """The event name whose arrival may start the flow (None: not started by events)."""
    match trigger:
        case EventTrigger():
            return trigger.event
        case ProfileChangeTrigger():
            return PROFILE_CHANGED
        case SegmentEntryTrigger():
            return SEGMENT_ENTERED
        case DateTrigger() | AudienceTrigger() | FlowTrigger():
            return None
    assert_never(trigger)


def admits(trigger: Trigger, flow_id: str, name: str, properties: dict[str, Any]) -> bool:
    """Whether an event (``name``, ``properties``) starts a journey of the flow ``flow_id`` by
    ``trigger``, as far as the event alone tells."""
    match trigger:
        case EventTrigger():
            own = name in _JOURNEY_EVENTS and properties.get("flow_id") == flow_id
            return trigger.event == name and not own and matches_all(trigger.where, properties)
        case ProfileChangeTrigger():
            # A change made by a step of this very flow does not start it again (that could loop).
            own = properties.get("flow_id") == flow_id
            return name == PROFILE_CHANGED and not own and _changed_as_asked(trigger, properties)
        case SegmentEntryTrigger():
            return name == SEGMENT_ENTERED and properties.get("segment") == trigger.segment
        case DateTrigger() | AudienceTrigger() | FlowTrigger():
            return False  # Schedules and add_to_flow start these, never an event
    assert_never(trigger)


def _changed_as_asked(trigger: ProfileChangeTrigger, properties: dict[str, Any]) -> bool:
    """The attribute is in ``changed`` and its old / new values are the ones asked (a null asks
    for "unset": the store writes null for an absent value)."""
    changed = properties.get("changed")
    if not isinstance(changed, dict):
        return False
    change = changed.get(trigger.attribute, _MISSING)
    if not isinstance(change, dict):
        return False
    if trigger.from_given and not _same(change.get("from"), trigger.from_):
        return False
    return not (trigger.to_given and not _same(change.get("to"), trigger.to))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(actual: Any, expected: Any) -> bool:
    # JSON tells 1 from true (Python's == does not); 1 and 1.0 are the same number.
    kinds_agree = type(actual) is type(expected) or (_number(actual) and _number(expected))
    return bool(kinds_agree and actual == expected)
