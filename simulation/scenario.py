"""A scenario: who the simulated person is, what they do when (offsets from the start), what the
services a flow calls answer, and what should happen (docs/simulate.md)."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from flowline.clock import next_time_of_day, next_weekday_time
from flowline.document_paths import error_path
from flowline.durations import format_duration, parse_duration
from flowline.flow.base import WEEKDAYS, TimeOfDay, Weekday
from flowline.flow.validation import FlowFault, FlowInvalid, load_document

_OFFSET = re.compile(r"^(\d+[smhdw])+$")


def parse_offset(value: object) -> timedelta:
    """``0``, ``30s``, ``1d``, or several units in a row, largest first as one writes them: ``2d3h``."""
    if isinstance(value, timedelta):
        return value
    if value == 0 or value == "0":
        return timedelta(0)
    if not isinstance(value, str) or not _OFFSET.match(value.replace(" ", "")):
        raise ValueError(f"{value!r} is not an offset such as '0s', '4h', '2d3h' or '1w'")
    parts = re.findall(r"\d+[smhdw]", value.replace(" ", ""))
    return sum((parse_duration(part) for part in parts), timedelta(0))


def format_offset(value: timedelta) -> str:
    """``+2d3h``: the offset as the path prints it, to the nearest minute from an hour on, else to
    the nearest second. The test server's clock runs on while activities work (a second or so on
    a busy machine), and a step an hour in should read ``+1h``, not ``+1h1s``."""
    seconds = round(value.total_seconds())
    if seconds >= 3600:
        seconds = round(seconds / 60) * 60
    if seconds <= 0:
        return "+0s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return f"+{out}"


Offset = Annotated[timedelta, BeforeValidator(parse_offset)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PushDevice(_Strict):
    token: str = Field(min_length=1, max_length=500)
    platform: Literal["ios", "android", "web"] = "android"


class Person(_Strict):
    """Someone the flow may send to: the person, their referrer, a friend."""

    id: str = Field(min_length=1, max_length=200)
    attributes: dict[str, Any] = Field(default_factory=dict)
    push_tokens: list[PushDevice] = Field(default_factory=list, max_length=100)
    tags: list[str] = Field(default_factory=list, max_length=100)


class ScenarioProfile(Person):
    id: str = Field(default="simulated-person", min_length=1, max_length=200)
    referrer: Person | None = None
    friends: list[Person] = Field(default_factory=list, max_length=100)


class ScenarioEvent(_Strict):
    at: Offset = timedelta(0)
    name: str = Field(min_length=1, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)
    # Default: a deterministic id from its position, so an event is never counted twice.
    id: str | None = Field(default=None, min_length=1, max_length=200)


class Entry(_Strict):
    """An explicit start of the journey (what `POST /v1/flows/{id}/journeys` does)."""

    at: Offset = timedelta(0)
    variables: dict[str, Any] = Field(default_factory=dict)


class Start(_Strict):
    """When the simulation starts: the next such moment after the current time (the test server's
    clock only moves forward), so that quiet hours, windows and times of day give the same path
    and the same offsets on every run."""

    at: TimeOfDay = "09:00"
    weekday: Weekday | None = None
    timezone: str = Field(default="UTC", min_length=1, max_length=64)

    @model_validator(mode="after")
    def _known_zone(self) -> Start:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"unknown time zone {self.timezone!r}") from None
        return self

    def first_instant(self, now: datetime) -> datetime:
        wall = time.fromisoformat(self.at)
        zone = ZoneInfo(self.timezone)
        if self.weekday is None:
            return next_time_of_day(now, wall, zone)
        return next_weekday_time(now, WEEKDAYS.index(self.weekday), wall, zone)


class Answer(_Strict):
    """What an HTTP service answers the flow: for a call_api, webhook or custom step by its id,
    or for any request whose URL starts with ``url``."""

    step: str | None = Field(default=None, min_length=1, max_length=64)
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    status: int = Field(default=200, ge=100, le=599)
    body: Any = None
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_target(self) -> Answer:
        if (self.step is None) == (self.url is None):
            raise ValueError("an answer names exactly one of step and url")
        return self


class SentExpectation(_Strict):
    """One message the journey sends, in order: each given field must match."""

    step: str | None = None
    channel: Literal["email", "sms", "push", "in_app"] | None = None
    to: str | None = Field(default=None, description="the recipient's profile id")
    contains: str | None = Field(default=None, description="text found in the subject, title or body")


def _step_shorthand(value: object) -> object:
    return {"step": value} if isinstance(value, str) else value


class Expectations(_Strict):
    path: list[str] | None = Field(default=None, description="the step ids visited, in order")
    sent: list[Annotated[SentExpectation, BeforeValidator(_step_shorthand)]] | None = None
    exit: str | None = Field(default=None, description="the journey's status or exit reason")
    variables: dict[str, Any] | None = Field(default=None, description="values the journey ends with")


class Scenario(_Strict):
    name: str | None = Field(default=None, max_length=200)
    # The flow file, relative to the scenario's file (required in *.test.yaml files).
    flow: str | None = Field(default=None, min_length=1, max_length=1000)
    # Default: now (whatever the time of day).
    start: Start | None = None
    profile: ScenarioProfile = Field(default_factory=ScenarioProfile)
    entry: Entry | None = None
    events: list[ScenarioEvent] = Field(default_factory=list, max_length=10_000)
    answers: list[Answer] = Field(default_factory=list, max_length=1000)
    # Stop looking at this offset (the journey may still be running then); default: its end.
    until: Offset | None = None
    expect: Expectations | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Scenario:
        offsets = [e.at for e in self.events]
        if offsets != sorted(offsets):
            raise ValueError("events are listed in the order of their offsets (at)")
        if self.until is not None and offsets and self.until < offsets[-1]:
            raise ValueError(f"until ({format_duration(self.until)}) is before the last event")
        return self


class ScenarioInvalid(FlowInvalid):
    """A scenario file that does not parse: each fault with its path in the document."""


def parse_scenario(document: Any) -> Scenario:
    if not isinstance(document, dict):
        raise ScenarioInvalid([FlowFault("$", "a scenario is a mapping (object)")])
    try:
        return Scenario.model_validate(document)
    except ValidationError as error:
        faults = []
        for item in error.errors(include_url=False):
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = "unknown field"
            faults.append(FlowFault(error_path(document, item), message))
        raise ScenarioInvalid(faults) from None


def load_scenario(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioInvalid([FlowFault("$", f"cannot read {path}: {error.strerror}")]) from None
    try:
        return parse_scenario(load_document(text))
    except FlowInvalid as error:
        raise ScenarioInvalid(error.faults) from None
