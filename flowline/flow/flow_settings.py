"""A flow's settings: re-entry, stop conditions, goal, entry window, limits, declared variables."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, assert_never

from pydantic import AwareDatetime, Discriminator, Field, Tag, model_validator

from flowline.conditions.events import EventMatch
from flowline.durations import WaitDuration, duration_default
from flowline.flow.base import Identifier, TimeOfDay, VariableName, check_zone
from flowline.flow.triggers import SEGMENT_ENTERED
from flowline.flow.windows import CallRate, CallWindow
from flowline.strict import Strict

VariableType = Literal["text", "number", "boolean", "date", "list", "object"]


def variable_fits(kind: VariableType, value: Any) -> bool:
    """Whether ``value`` (JSON) is a ``kind``; null fits every type (an unset variable)."""
    if value is None:
        return True
    match kind:
        case "text":
            return isinstance(value, str)
        case "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "boolean":
            return isinstance(value, bool)
        case "date":
            if not isinstance(value, str):
                return False
            try:
                datetime.fromisoformat(value)
            except ValueError:
                return False
            return True
        case "list":
            return isinstance(value, list)
        case "object":
            return isinstance(value, dict)
    assert_never(kind)


class VariableDeclaration(Strict):
    type: VariableType
    default: Any = None

    @model_validator(mode="after")
    def _default_fits(self) -> VariableDeclaration:
        if not variable_fits(self.type, self.default):
            raise ValueError(f"the default is not a {self.type}")
        return self


class SegmentStop(Strict):
    """Entering the segment (a saved segment's id) stops the journey: the router signals the
    ``segment_entered`` event of that segment like any stop_when event."""

    segment: Identifier

    @property
    def event(self) -> str:
        """The event name the journey listens to for it."""
        return SEGMENT_ENTERED

    def matches(self, name: str, properties: dict[str, Any]) -> bool:
        return name == SEGMENT_ENTERED and properties.get("segment") == self.segment

    def stop_reason(self, name: str) -> str:
        return f"stop_when: entered segment {self.segment}"


def _stop_kind(value: Any) -> str:
    if isinstance(value, SegmentStop) or (isinstance(value, dict) and "segment" in value):
        return "SegmentStop"
    return "EventMatch"


# Tagged by the key, so a fault gets one path (the tags are left out of JSON paths).
StopWhen = Annotated[
    Annotated[EventMatch, Tag("EventMatch")] | Annotated[SegmentStop, Tag("SegmentStop")],
    Discriminator(_stop_kind),
]


class Goal(EventMatch):
    """A conversion: the event happening within ``within`` of entering the flow. With
    ``exit: true`` the journey also leaves when it converts."""

    within: WaitDuration = duration_default(timedelta(days=7))
    exit: bool = False


MessageChannel = Literal["email", "sms", "push", "in_app"]
# In-app messages wait in the inbox: quiet hours concern the channels that interrupt.
QuietChannel = Literal["email", "sms", "push"]
QUIET_CHANNELS: tuple[QuietChannel, ...] = ("email", "sms", "push")


class QuietHours(Strict):
    """No message goes out between ``from`` and ``to`` (e.g. 21:00 to 08:00) in ``timezone`` when
    given, else the person's zone (their ``timezone`` attribute, else the workspace's), else UTC;
    a send due then waits for ``to``, it is not dropped."""

    from_: TimeOfDay = Field(alias="from")
    to: TimeOfDay
    timezone: str | None = None
    channels: list[QuietChannel] = Field(
        default_factory=lambda: list(QUIET_CHANNELS), min_length=1, max_length=3
    )

    @model_validator(mode="after")
    def _sensible(self) -> QuietHours:
        if self.from_ == self.to:
            raise ValueError("'from' and 'to' are the same time: quiet hours would be empty")
        check_zone(self.timezone)
        return self

    def as_window(self) -> CallWindow:
        """The hours messages may go out: from the end of the quiet hours to their start."""
        return CallWindow.model_validate({"from": self.to, "to": self.from_, "timezone": self.timezone})


class FrequencyCap(Strict):
    """At most ``max`` messages on ``channel`` to one person within ``per``, counting the sends of
    every flow of the workspace; a send over the cap is skipped (reason ``frequency_cap``)."""

    channel: MessageChannel
    max: int = Field(ge=1, le=10_000)
    per: WaitDuration


class FlowSettings(Strict):
    # never: a profile enters once; after_exit: again once its journey ended;
    # concurrent: several journeys at once, one per entry key.
    reentry: Literal["never", "after_exit", "concurrent"] = "after_exit"
    # With reentry=concurrent: the trigger event property that tells entries apart
    # (default: every triggering event is an entry of its own).
    entry_key: str | None = None
    # Any of these events, or entering any of these segments, ends a journey at once, from any
    # step (also mid-pause or mid-wait).
    stop_when: list[StopWhen] = Field(default_factory=list, max_length=20)
    goal: Goal | None = None
    # Entries are taken from start_at until end_at (default: a year after the version's publication).
    start_at: AwareDatetime | None = None
    end_at: AwareDatetime | None = None
    # A journey's waits end by this long after its entry; the journey then leaves (max_duration).
    max_duration: WaitDuration | None = None
    quiet_hours: QuietHours | None = None
    frequency_cap: list[FrequencyCap] = Field(default_factory=list, max_length=4)
    # At most this many messages per minute, hour or day from the whole flow, shared by every
    # worker; sends beyond it wait (durably) for the next period.
    send_rate: CallRate | None = None
    # Declared flow variables: values given at entry are checked against them; defaults fill gaps.
    variables: dict[VariableName, VariableDeclaration] = Field(default_factory=dict, max_length=100)

    @model_validator(mode="after")
    def _window(self) -> FlowSettings:
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise ValueError("end_at must come after start_at")
        channels = [cap.channel for cap in self.frequency_cap]
        if len(set(channels)) != len(channels):
            raise ValueError("one frequency_cap per channel")
        return self
