"""When a ``wait_for_event`` step is satisfied, given the events a journey heard (pure: the
interpreter calls it with ``workflow.now()``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flowline.clock import since
from flowline.conditions.events import WaitCondition, WaitCount
from flowline.flow.steps import WaitForEventStep
from flowline.journey import HeardEvent, TriggerEvent

AT_LEAST_ONCE = WaitCount(op=">=", value=1)


def _matching(condition: WaitCondition, heard: Sequence[HeardEvent], now: datetime) -> list[HeardEvent]:
    return [
        h
        for h in heard
        if condition.matches(h.event.name, h.event.properties)
        and (condition.within is None or h.heard_at >= since(now, condition.within))
    ]


def completing_event(
    step: WaitForEventStep, heard: Sequence[HeardEvent], now: datetime
) -> TriggerEvent | None:
    """The event that made every condition hold (the latest one a happened condition counts), or
    None while some condition does not hold. A not-happened condition holds while no matching
    event lies within its window."""
    latest: HeardEvent | None = None
    for condition in step.conditions:
        matching = _matching(condition, heard, now)
        if not condition.happened:
            if matching:
                return None
            continue
        if not matching or not (condition.count or AT_LEAST_ONCE).holds(len(matching)):
            return None
        newest = max(matching, key=lambda h: h.heard_at)
        if latest is None or newest.heard_at >= latest.heard_at:
            latest = newest
    return latest.event if latest is not None else None


def is_relevant(step: WaitForEventStep, event: TriggerEvent) -> bool:
    return any(condition.matches(event.name, event.properties) for condition in step.conditions)


def saved_values(save: dict[str, str], event: TriggerEvent) -> dict[str, Any]:
    """Variables from the event's properties (dotted paths); a missing property saves null."""
    values: dict[str, Any] = {}
    for variable, path in save.items():
        node: Any = event.properties
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        values[variable] = node
    return values
