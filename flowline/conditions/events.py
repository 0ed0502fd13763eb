"""Event conditions: the pieces profile rules, waits, stops and goals share, and where they differ.

Each names an event and filters its properties (``event`` and ``where``, as ``EventMatch`` has
them). They differ in which events they count, and so in what a ``count`` means:

- A profile rule (a branch's ``when``, a segment, a trigger's ``profile``): ``EventCondition``
  with an ``EventCount`` counts the profile's stored events in a window at the moment it is
  evaluated. No event is a count like any other: ``<= 2`` holds for 0, 1 or 2 events.
- A wait (``wait_for_event``'s ``conditions``): ``WaitCondition`` with a ``WaitCount`` counts
  the events the journey heard, and is checked when one arrives: ``<= 2`` holds for 1 or 2 (the
  event that arrived counts), and a count goes up to ``MAX_HEARD``, what a wait remembers.
- A stop (``stop_when``) and a goal (``settings.goal``): an ``EventMatch``, one such event.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, Field, model_validator

from flowline.conditions.operators import CountOp
from flowline.conditions.property_filter import PropertyFilter, matches_all
from flowline.durations import Duration, WaitDuration
from flowline.strict import Strict

EventName = Annotated[str, Field(min_length=1, max_length=200)]


def _compare(op: CountOp, count: int, value: int) -> bool:
    if op == "=":
        return count == value
    if op == ">=":
        return count >= value
    return count <= value


class EventMatch(Strict):
    """An event by name whose properties pass every ``where`` filter."""

    event: EventName
    where: list[PropertyFilter] = Field(default_factory=list)

    def matches(self, name: str, properties: dict[str, Any]) -> bool:
        return name == self.event and matches_all(self.where, properties)

    def stop_reason(self, name: str) -> str:
        """The exit reason when this stop_when entry stops a journey."""
        return f"stop_when: {name}"


# ---------------------------------------------------------------- profile rules


class EventCount(Strict):
    """A profile rule's count of stored events: ``=``, ``>=`` or ``<=`` the value, where no
    event at all is a count of 0 (``<= 2`` holds for 0, 1 or 2)."""

    op: CountOp
    value: int = Field(ge=0, le=1_000_000)

    def holds(self, count: int) -> bool:
        return _compare(self.op, count, self.value)


def _utc(value: datetime) -> datetime:
    """Naive date-times are UTC, as event timestamps are (see the events API)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


AwareDateTime = Annotated[datetime, AfterValidator(_utc)]


class Between(Strict):
    """From ``from`` through ``to``, both inclusive; a date-time without an offset is UTC."""

    from_: AwareDateTime = Field(alias="from")
    to: AwareDateTime

    @model_validator(mode="after")
    def _ordered(self) -> Between:
        if self.from_ > self.to:
            raise ValueError("'from' must not be after 'to'")
        return self


class EventCondition(Strict):
    """Counts the profile's events named ``event`` that fall in the window and pass every
    ``where`` filter (flowline/conditions/property_filter.py defines them). The window:
    ``within d`` is now - d <= timestamp <= now; ``between`` is
    from <= timestamp <= to; none is every such event ever. Without ``count`` the event
    happened when there is at least one; with it, the count must satisfy it (``=``, ``>=``,
    ``<=``). ``happened: false`` negates the whole test (no such events, or not that count)."""

    event: EventName
    happened: bool = True
    count: EventCount | None = None
    within: Duration | None = None
    between: Between | None = None
    where: list[PropertyFilter] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _one_window(self) -> EventCondition:
        if self.within is not None and self.between is not None:
            raise ValueError("give either 'within' or 'between', not both")
        if self.within is not None and self.within <= timedelta(0):
            raise ValueError("'within' must be longer than zero")
        return self

    def holds_for(self, count: int) -> bool:
        """Whether ``count`` matching events in the window satisfy the condition."""
        happened = count >= 1 if self.count is None else self.count.holds(count)
        return happened == self.happened


# ---------------------------------------------------------------- waits

# A wait remembers at most this many events (the newest), so its counts go up to it.
MAX_HEARD = 1_000


class WaitCount(Strict):
    """A wait's count of the events it heard: ``=``, ``>=`` (the default) or ``<=`` the value,
    at least 1 (the wait is checked when an event arrives), so ``<= 2`` holds for 1 or 2."""

    op: CountOp = ">="
    value: int = Field(ge=1, le=MAX_HEARD)

    def holds(self, count: int) -> bool:
        return count >= 1 and _compare(self.op, count, self.value)


class WaitCondition(EventMatch):
    """``happened`` (default): matching events reached ``count`` (default: at least one);
    ``happened: false``: none matched. ``within`` looks back only that far from the moment the
    conditions are checked (each time an event arrives)."""

    happened: bool = True
    count: WaitCount | None = None
    within: WaitDuration | None = None

    @model_validator(mode="after")
    def _count_needs_happened(self) -> WaitCondition:
        if not self.happened and self.count is not None:
            raise ValueError("'count' goes with happened conditions")
        return self
