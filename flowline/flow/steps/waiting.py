"""Steps that wait: for time (``pause``), for a date in the profile (``wait_for_date``), for
what the person does (``wait_for_event``) or for a change of their profile (``wait_for_change``).

A journey hears an event when the router signals it (JourneyLauncher): every journey in flight
of that profile whose flow listens to the event's name (``FlowDocument.listened_events``).
Every wait lasts from 1s to 5 years (``WaitDuration``); flowline/flow/timing.py computes when
pauses and date waits end, flowline/flow/event_waits.py when an event wait is satisfied.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from flowline.conditions.events import WaitCondition
from flowline.durations import WaitDuration
from flowline.flow.base import StepBase, StepId, TimeOfDay, VariableName, Weekday, check_zone
from flowline.strict import Strict

# The event the store writes when a profile's attributes change (properties.changed holds
# {attribute: {"from": old, "to": new}}); wait_for_change listens to it.
PROFILE_CHANGED = "profile_changed"
# "Indefinite" waits end after this long, unless the flow's max_duration ends them sooner.
INDEFINITE = timedelta(days=365)
# Tagged by the value, so a bad duration gets one fault (not one more for "not 'indefinite'").
Timeout = Annotated[
    Annotated[Literal["indefinite"], Tag("Indefinite")] | Annotated[WaitDuration, Tag("Duration")],
    Discriminator(lambda v: "Indefinite" if v == "indefinite" else "Duration"),
]


def timeout_of(value: timedelta | Literal["indefinite"]) -> timedelta:
    return INDEFINITE if value == "indefinite" else value


# ---------------------------------------------------------------- time


class WeekdayTime(Strict):
    weekday: Weekday
    time: TimeOfDay


class PauseStep(StepBase):
    """``for`` a duration (then, with ``until_time``, until that time of day), ``until`` a weekday
    and time, or ``until`` an exact date-time. Times are in ``timezone``, else the profile's
    ``timezone`` attribute, else UTC; an exact date-time with an offset is taken as it is."""

    type: Literal["pause"]
    for_: WaitDuration | None = Field(default=None, alias="for")
    until_time: TimeOfDay | None = None
    until: WeekdayTime | datetime | None = None
    timezone: str | None = None
    next: StepId | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> PauseStep:
        if (self.for_ is None) == (self.until is None):
            raise ValueError("a pause takes either 'for' or 'until'")
        if self.until_time is not None and self.for_ is None:
            raise ValueError("'until_time' goes with 'for'")
        check_zone(self.timezone)
        return self

    @property
    def needs_zone(self) -> bool:
        """Whether the pause reads a wall clock (and so a time zone)."""
        if self.until_time is not None or isinstance(self.until, WeekdayTime):
            return True
        return isinstance(self.until, datetime) and self.until.tzinfo is None


# The longest offset from an every-year date (timing.date_wait_end looks up to two years ahead).
EVERY_YEAR_OFFSET = timedelta(days=365)


class WaitForDateStep(StepBase):
    """Waits for a date in a profile attribute (an ISO date or date-time): ``is_in`` a duration
    before it, ``was`` a duration after it, ``is_today``, ``is_tomorrow`` (the day before) or
    ``was_yesterday`` (the day after); ``every_year`` ignores the year. A date without a time
    counts from ``at`` (default 00:00) in the step's ``timezone``, else the profile's, else UTC.
    A moment already past lets the journey go on at once."""

    type: Literal["wait_for_date"]
    attribute: str = Field(min_length=1, max_length=200)
    is_in: WaitDuration | None = None
    was: WaitDuration | None = None
    is_today: bool = False
    is_tomorrow: bool = False
    was_yesterday: bool = False
    every_year: bool = False
    at: TimeOfDay | None = None
    timezone: str | None = None
    next: StepId | None = None

    @model_validator(mode="after")
    def _one_condition(self) -> WaitForDateStep:
        chosen = [
            self.is_in is not None,
            self.was is not None,
            self.is_today,
            self.is_tomorrow,
            self.was_yesterday,
        ]
        if sum(chosen) != 1:
            raise ValueError("give exactly one of is_in, was, is_today, is_tomorrow, was_yesterday")
        offset = self.is_in or self.was
        if self.every_year and offset is not None and offset > EVERY_YEAR_OFFSET:
            # The date comes back each year: a longer offset would have no next occurrence to wait for.
            raise ValueError("with every_year, is_in and was are at most 365d")
        check_zone(self.timezone)
        return self


# ---------------------------------------------------------------- what the person does


class HappenedNext(Strict):
    happened: StepId | None = None
    timeout: StepId | None = None


class WaitForEventStep(StepBase):
    """Waits until every condition holds (branch ``happened``) or the timeout passes (``timeout``).
    Events count from the moment the journey reaches the step, or from its entry into the flow
    with ``include_since_entry``. ``save`` copies properties (dotted paths) of the event that
    completed the wait into flow variables (null when it has none)."""

    type: Literal["wait_for_event"]
    conditions: list[WaitCondition] = Field(min_length=1, max_length=20)
    timeout: Timeout
    save: dict[VariableName, str] = Field(default_factory=dict, max_length=50)
    include_since_entry: bool = False
    next: StepId | HappenedNext | None = None

    @field_validator("conditions")
    @classmethod
    def _not_happened_alone(cls, conditions: list[WaitCondition]) -> list[WaitCondition]:
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
