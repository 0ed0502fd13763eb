"""Triggers: what starts a journey of a flow (docs/triggers/).

``event``, ``profile_change`` and ``segment_entry`` react to events as they are routed (the
latter two to the system events ``profile_changed`` and ``segment_entered``); ``audience``
and ``date`` run on Temporal Schedules; ``flow`` only by ``add_to_flow`` or the API.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from flowline.conditions import PropertyFilter
from flowline.conditions.rules import MAX_DEPTH, Condition, depth
from flowline.durations import Duration
from flowline.flow.base import Identifier, TimeOfDay, Weekday, check_zone
from flowline.strict import Strict

# The system events a segment's re-evaluation writes (properties: {"segment": id}).
SEGMENT_ENTERED = "segment_entered"
SEGMENT_EXITED = "segment_exited"


def _shallow(condition: Condition | None) -> None:
    if condition is not None and depth(condition) > MAX_DEPTH:
        raise ValueError(f"the profile condition nests deeper than {MAX_DEPTH} levels")


class EventProfileMatch(Strict):
    """The event's property must equal the profile's attribute (Reteno's "event with segment
    parameters"): a property or attribute that is missing never matches."""

    event_property: str = Field(min_length=1, max_length=200)
    profile_attribute: str = Field(min_length=1, max_length=200)


class Occurrence(Strict):
    """Which of the profile's matching events start a journey, counting this profile's stored
    events of the trigger's name that pass ``where``, in timestamp order, the current one
    included (GetSocial: "every X events, or just after the first Y ones").
    ``every: 3`` enters on the 3rd, 6th, 9th ...; ``first: 2`` enters on the 1st and 2nd only."""

    every: int | None = Field(default=None, ge=1, le=1_000_000)
    first: int | None = Field(default=None, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _one_rule(self) -> Occurrence:
        if (self.every is None) == (self.first is None):
            raise ValueError("give exactly one of 'every' or 'first'")
        return self

    def admits(self, position: int) -> bool:
        """Whether the ``position``-th matching event (1-based) enters."""
        if self.every is not None:
            return position % self.every == 0
        assert self.first is not None
        return position <= self.first


class EventTrigger(Strict):
    """A journey starts when the profile sends this event, every ``where`` filter holds, the
    profile satisfies ``profile``, each ``match`` pair is equal and ``occurrence`` admits it.
    The last three are read from the store in the transaction that claims the journey."""

    type: Literal["event"]
    event: str = Field(min_length=1, max_length=200)
    where: list[PropertyFilter] = Field(default_factory=list)
    profile: Condition | None = None
    match: list[EventProfileMatch] = Field(default_factory=list, max_length=50)
    occurrence: Occurrence | None = None

    @model_validator(mode="after")
    def _shallow_enough(self) -> EventTrigger:
        _shallow(self.profile)
        return self


class ProfileChangeTrigger(Strict):
    """A journey starts when ``attribute`` changes (a ``profile_changed`` event naming it, from the
    API, an import or a profile step). ``from`` / ``to`` restrict the old / new value when given;
    ``from: null`` means "was unset" and ``to: null`` "was erased", so an absent key and an
    explicit null differ (read ``model_fields_set``)."""

    type: Literal["profile_change"]
    attribute: str = Field(min_length=1, max_length=200)
    from_: Any = Field(default=None, alias="from")
    to: Any = None
    profile: Condition | None = None

    model_config = {"populate_by_name": True}

    @model_validator(mode="after")
    def _shallow_enough(self) -> ProfileChangeTrigger:
        _shallow(self.profile)
        return self

    @model_serializer(mode="wrap")
    def _keep_explicit_nulls(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        # The canonical dump drops None; an explicit null here means "unset" and must survive.
        data = handler(self)
        if isinstance(data, dict):
            for name, key in (("from_", "from" if info.by_alias else "from_"), ("to", "to")):
                if name in self.model_fields_set:
                    data.setdefault(key, None)
        return data

    @property
    def from_given(self) -> bool:
        return "from_" in self.model_fields_set

    @property
    def to_given(self) -> bool:
        return "to" in self.model_fields_set


class SegmentEntryTrigger(Strict):
    """A journey starts when the profile enters the dynamic segment (a ``segment_entered`` event,
    written when data changes or time passes makes the segment's rule true for the profile)."""

    type: Literal["segment_entry"]
    segment: Identifier


class DateTrigger(Strict):
    """A journey starts at a time of day ``days`` before, on or after the date in a profile
    attribute (a date or date-time), in the trigger's zone, else the profile's, else the
    workspace's, else UTC. ``every_year`` repeats it on each anniversary (Feb 29 on Feb 28 in other
    years). Scanned on a Temporal Schedule; each (profile, date) enters at most once."""

    type: Literal["date"]
    attribute: str = Field(min_length=1, max_length=200)
    when: Literal["before", "on", "after"] = "on"
    days: int = Field(default=0, ge=0, le=3650)
    every_year: bool = False
    at: TimeOfDay = "00:00"
    timezone: str | None = None
    profile: Condition | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DateTrigger:
        check_zone(self.timezone)
        _shallow(self.profile)
        if self.when == "on" and self.days:
            raise ValueError("'days' goes with 'before' or 'after', not 'on'")
        if self.when != "on" and not self.days:
            raise ValueError(f"'{self.when}' needs 'days' of at least 1")
        return self

    @property
    def offset(self) -> timedelta:
        """Signed offset from the date: negative before it."""
        return timedelta(days=-self.days if self.when == "before" else self.days)


# Five fields (minute hour day-of-month month day-of-week): numbers, names, ranges, steps and
# lists. No '#', 'L', 'W' or '?': Temporal reads 'MON#2' silently as every Monday, so such forms
# are refused here and the calendar form says "second Monday" exactly.
_CRON_ATOM = r"(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?"
_CRON_FIELD = re.compile(rf"^{_CRON_ATOM}(,{_CRON_ATOM})*$")


def _cron(text: str) -> str:
    fields = text.split()
    if len(fields) != 5:
        raise ValueError("a cron expression has five fields: minute hour day-of-month month day-of-week")
    for name, field in zip(("minute", "hour", "day-of-month", "month", "day-of-week"), fields, strict=True):
        if not _CRON_FIELD.match(field):
            raise ValueError(
                f"cron {name} field '{field}' is not understood ('#', 'L', 'W' and '?' are not supported; "
                "for 'second Monday of the month' use the calendar form)"
            )
    return text


CronExpression = Annotated[str, Field(max_length=200), AfterValidator(_cron)]


def _at_least_an_hour(value: timedelta) -> timedelta:
    if value < timedelta(hours=1):
        raise ValueError("an audience runs at most once an hour ('every' of at least 1h)")
    if value > timedelta(days=366):
        raise ValueError("'every' is at most a year")
    return value


class CalendarSchedule(Strict):
    """Calendar runs at ``at`` on the days all the given fields allow: ``weekdays`` (any if empty),
    ``week_of_month`` (1 = days 1-7, 2 = days 8-14 ... 5 = days 29-31; needs ``weekdays``),
    ``days_of_month`` (not with ``week_of_month``), ``months`` (any if empty).
    "Second Monday of every month at 22:00" is ``{weekdays: [monday], week_of_month: 2, at: "22:00"}``."""

    at: TimeOfDay
    weekdays: list[Weekday] = Field(default_factory=list, max_length=7)
    week_of_month: int | None = Field(default=None, ge=1, le=5)
    days_of_month: list[Annotated[int, Field(ge=1, le=31)]] = Field(default_factory=list, max_length=31)
    months: list[Annotated[int, Field(ge=1, le=12)]] = Field(default_factory=list, max_length=12)

    @model_validator(mode="after")
    def _consistent(self) -> CalendarSchedule:
        if self.week_of_month is not None and not self.weekdays:
            raise ValueError("'week_of_month' needs 'weekdays'")
        if self.week_of_month is not None and self.days_of_month:
            raise ValueError("give 'week_of_month' or 'days_of_month', not both")
        return self


class AudienceSchedule(Strict):
    """When an audience flow runs: exactly one of ``every`` (at least 1h), ``cron`` or
    ``calendar``, read in ``timezone`` (else the workspace's, else UTC)."""

    every: Annotated[Duration, AfterValidator(_at_least_an_hour)] | None = None
    cron: CronExpression | None = None
    calendar: CalendarSchedule | None = None
    timezone: str | None = None

    @model_validator(mode="after")
    def _one_form(self) -> AudienceSchedule:
        check_zone(self.timezone)
        if sum(x is not None for x in (self.every, self.cron, self.calendar)) != 1:
            raise ValueError("give exactly one of 'every', 'cron' or 'calendar'")
        return self


class AudienceTrigger(Strict):
    """On each run of ``schedule``, a journey starts for everyone in ``segment`` (a saved segment's
    id) or matching ``condition`` at that time; each run enters a profile at most once (the re-entry
    rule still applies)."""

    type: Literal["audience"]
    segment: Identifier | None = None
    condition: Condition | None = None
    schedule: AudienceSchedule

    @model_validator(mode="after")
    def _one_audience(self) -> AudienceTrigger:
        if (self.segment is None) == (self.condition is None):
            raise ValueError("give exactly one of 'segment' or 'condition'")
        _shallow(self.condition)
        return self


class FlowTrigger(Strict):
    """No automatic entry: journeys start from another flow's ``add_to_flow`` or the API."""

    type: Literal["flow"]


Trigger = Annotated[
    EventTrigger | ProfileChangeTrigger | SegmentEntryTrigger | DateTrigger | AudienceTrigger | FlowTrigger,
    Field(discriminator="type"),
]
