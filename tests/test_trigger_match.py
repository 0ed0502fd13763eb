"""Which events start which triggers, by the event alone (flowline/flow/trigger_match.py), and
which segments an ingest of events may change (launch/segment_watch.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter

from flowline.conditions.rules import Condition
from flowline.flow import trigger_match
from flowline.flow.triggers import Trigger
from flowline.store.events import JOURNEY_EVENTS
from launch.segment_watch import may_change

_TRIGGER: TypeAdapter[Trigger] = TypeAdapter(Trigger)


def admits(trigger: dict[str, Any], name: str, properties: dict[str, Any] | None = None) -> bool:
    """Whether the event starts the flow "f" by ``trigger``."""
    return trigger_match.admits(_TRIGGER.validate_python(trigger), "f", name, properties or {})


def changed(old: Any, new: Any, attribute: str = "plan") -> dict[str, Any]:
    return {"changed": {attribute: {"from": old, "to": new}}}


def test_the_journey_events_are_the_stores() -> None:
    assert frozenset(trigger_match._JOURNEY_EVENTS) == JOURNEY_EVENTS


@pytest.mark.parametrize(
    ("extra", "old", "new", "expected"),
    [
        ({}, None, "pro", True),
        ({"to": "pro"}, "free", "pro", True),
        ({"to": "pro"}, "pro", "free", False),
        ({"from": None}, None, "pro", True),  # from unset
        ({"from": None}, "free", "pro", False),
        ({"to": None}, "pro", None, True),  # erased
        ({"to": None}, None, "pro", False),
        ({"from": "free", "to": "pro"}, "free", "pro", True),
        ({"from": "free", "to": "pro"}, "trial", "pro", False),
        ({"to": 1}, 0, 1.0, True),  # the same number
        ({"to": 1}, 0, True, False),  # JSON tells 1 from true
    ],
)
def test_profile_change_from_and_to(extra: dict[str, Any], old: Any, new: Any, expected: bool) -> None:
    trigger = {"type": "profile_change", "attribute": "plan", **extra}
    assert admits(trigger, "profile_changed", changed(old, new)) is expected


def test_profile_change_needs_its_attribute_and_not_its_own_flow() -> None:
    trigger = {"type": "profile_change", "attribute": "plan"}
    assert not admits(trigger, "profile_changed", changed(1, 2, attribute="age"))
    assert not admits(trigger, "viewed", changed(None, "pro"))
    # Made by a step of flow "f" itself / of another flow.
    assert not admits(trigger, "profile_changed", changed(None, "pro") | {"flow_id": "f"})
    assert admits(trigger, "profile_changed", changed(None, "pro") | {"flow_id": "other"})


def test_segment_entry_and_the_rest() -> None:
    entry = {"type": "segment_entry", "segment": "vip"}
    assert admits(entry, "segment_entered", {"segment": "vip"})
    assert not admits(entry, "segment_entered", {"segment": "other"})
    assert not admits(entry, "segment_exited", {"segment": "vip"})
    assert not admits({"type": "flow"}, "segment_entered", {"segment": "vip"})
    event = {"type": "event", "event": "flow_exited"}
    assert admits(event, "flow_exited", {"flow_id": "g"})
    assert not admits(event, "flow_exited", {"flow_id": "f"})  # its own


def test_trigger_events() -> None:
    for trigger, name in (
        ({"type": "event", "event": "viewed"}, "viewed"),
        ({"type": "profile_change", "attribute": "plan"}, "profile_changed"),
        ({"type": "segment_entry", "segment": "vip"}, "segment_entered"),
        ({"type": "flow"}, None),
    ):
        assert trigger_match.trigger_event(_TRIGGER.validate_python(trigger)) == name


@pytest.mark.parametrize(
    ("rule", "names", "expected"),
    [
        ({"attribute": "plan", "op": "is", "value": "pro"}, {"viewed"}, False),
        ({"not": {"tag": "churned"}}, {"viewed"}, True),  # holds for a new, empty profile
        ({"event": "purchase"}, {"viewed"}, False),
        ({"event": "purchase"}, {"viewed", "purchase"}, True),
        ({"event": "session", "happened": False, "within": "9d"}, {"viewed"}, True),
        ({"flow": "onboarding", "state": "in_flow"}, {"viewed"}, True),
    ],
)
def test_which_segments_an_ingest_may_change(rule: dict[str, Any], names: set[str], expected: bool) -> None:
    condition = TypeAdapter(Condition).validate_python(rule)
    assert may_change(condition, names, datetime(2026, 1, 1, tzinfo=UTC)) is expected
