"""Steps and settings that wait for what a person does: events and profile changes.

A journey hears an event when the router signals it (launch/routing.py): every journey
in flight of that profile whose flow listens to the event's name (``listened_events``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag, field_validator, model_validator

from flowline.conditions import PropertyFilter, matches_all
from flowline.durations import Duration, duration_default
from flowline.flow.base import StepBase, StepId, Strict, VariableName

# The event the store writes when a profile's attributes change (properties.changed holds
# {attribute: {"from": old, "to": new}}); wait_for_change listens to it.
PROFILE_CHANGED = "profile_changed"
# "Indefinite" waits end after this long, unless the flow's max_duration ends them sooner.
INDEFINITE = timedelta(days=365)
LONGEST_WAIT = timedelta(days=5 * 366)


def _bounded(value: timedelta) -> timedelta:
    if not timedelta(seconds=1) <= value <= LONGEST_WAIT:
        raise ValueError("a wait lasts from 1s to 5 years")
    return value


WaitDuration = Annotated[Duration, AfterValidator(_bounded)]
# Tagged by the value, so a bad duration gets one fault (not one more for "not 'indefinite'").
Timeout = Annotated[
    Annotated[Literal["indefinite"], Tag("Indefinite")] | Annotated[WaitDuration, Tag("Duration")],
    Discriminator(lambda v: "Indefinite" if v == "indefinite" else "Duration"),
]


class EventMatch(Strict):
    """An event by name whose properties pass every ``where`` filter."""

    event: str = Field(min_length=1, max_length=200)
    where: list[PropertyFilter] = Field(default_factory=list)

    def matches(self, name: str, properties: dict[str, Any]) -> bool:
        return name == self.event and matches_all(self.where, properties)

    def stop_reason(self, name: str) -> str:
        """The exit reason when this stop_when entry stops a journey."""
        return f"stop_when: {name}"


# A wait remembers at most this many events (the newest), so counts go up to it.
MAX_COUNT = 1_000


class EventCount(Strict):
    op: Literal["=", ">=", "<="] = ">="
    value: int = Field(ge=1, le=MAX_COUNT)

    def holds(self, count: int) -> bool:
        if self.op == "=":
            return count == self.value
        if self.op == ">=":
            return count >= self.value
        return 1 <= count <= self.value


class EventCondition(EventMatch):
    """``happened`` (default): matching events reached ``count`` (default: at least one);
    ``happened: false``: none matched. ``within`` looks back only that far from the moment the
    conditions are checked (each time an event arrives)."""

    happened: bool = True
    count: EventCount | None = None
    within: WaitDuration | None = None

    @model_validator(mode="after")
    def _count_needs_happened(self) -> EventCondition:
        if not self.happened and self.count is not None:
            raise ValueError("'count' goes with happened conditions")
        return self


class HappenedNext(Strict):
    happened: StepId | None = None
    timeout: StepId | None = None


class WaitForEventStep(StepBase):
    """Waits until every condition holds (branch ``happened``) or the timeout passes (``timeout``).
    Events count from the moment the journey reaches the step, or from its entry into the flow
    with ``include_since_entry``. ``save`` copies properties (dotted paths) of the event that
    completed the wait into flow variables (null when it has none)."""

    type: Literal["wait_for_event"]
    conditions: list[EventCondition] = Field(min_length=1, max_length=20)
    timeout: Timeout
    save: dict[VariableName, str] = Field(default_factory=dict, max_length=50)
    include_since_entry: bool = False
    next: StepId | HappenedNext | None = None

    @field_validator("conditions")
    @classmethod
    def _not_happened_alone(cls, conditions: list[EventCondition]) -> list[EventCondition]:
        # A field validator, so the fault's path is the conditions list.
        if not any(c.happened for c in conditions):
            raise ValueError("'not happened' conditions need a 'happened' condition beside them")
        return conditions


class ChangedNext(Strict):
    changed: StepId | None = None
    timeout: StepId | None = None


class WaitForChangeStep(StepBase):
    """Waits until the profile's ``attribute`` changes (to ``to``, when given) or the timeout passes."""

    type: Literal["wait_for_change"]
    attribute: str = Field(min_length=1, max_length=200)
    to: Any = None
    timeout: Timeout
    next: StepId | ChangedNext | None = None

    def is_met_by(self, properties: dict[str, Any]) -> bool:
        changed = properties.get("changed")
        if not isinstance(changed, dict) or self.attribute not in changed:
            return False
        if self.to is None:
            return True
        after = changed[self.attribute]
        return isinstance(after, dict) and after.get("to") == self.to


def timeout_of(value: timedelta | Literal["indefinite"]) -> timedelta:
    return INDEFINITE if value == "indefinite" else value


# ---------------------------------------------------------------- settings


class Goal(EventMatch):
    """A conversion: the event happening within ``within`` of entering the flow. With
    ``exit: true`` the journey also leaves when it converts."""

    within: WaitDuration = duration_default(timedelta(days=7))
    exit: bool = False
