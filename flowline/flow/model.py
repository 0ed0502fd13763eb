"""The flow document as pydantic models: one discriminated union for steps, one for triggers.

Every model forbids unknown fields, so a typo in a flow is a fault with a path, not a
silently ignored setting. Adding a step type means adding it to ``Step``; the interpreter's
dispatch (workflows/journey.py) is exhaustive over that union and fails type checking
until the new case is handled.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    Field,
    model_validator,
)

from flowline.flow.base import (
    Expression,
    Identifier,
    StepId,
    TemplatedData,
    TimeOfDay,
    VariableName,
    Weekday,
)
from flowline.flow.base import ExpressionValue as ExpressionValue
from flowline.flow.base import StepBase as _StepBase
from flowline.flow.base import Strict as _Strict
from flowline.flow.base import check_zone as _check_zone
from flowline.flow.branching import BranchStep
from flowline.flow.flow_settings import FlowSettings as FlowSettings
from flowline.flow.flow_settings import VariableDeclaration as VariableDeclaration
from flowline.flow.flow_settings import variable_fits as variable_fits

# Step models kept in modules of their own, re-exported here with the rest of the union.
from flowline.flow.steps_flow import AddToFlowNext as AddToFlowNext
from flowline.flow.steps_flow import AddToFlowStep as AddToFlowStep
from flowline.flow.steps_flow import OtherParticipant as OtherParticipant
from flowline.flow.steps_flow import ParticipantSource as ParticipantSource
from flowline.flow.steps_flow import PassedValue as PassedValue
from flowline.flow.steps_http import CallApiStep as CallApiStep
from flowline.flow.steps_profile import DoNotContactStep as DoNotContactStep
from flowline.flow.steps_profile import StartConversationStep as StartConversationStep
from flowline.flow.steps_profile import TagStep as TagStep
from flowline.flow.steps_profile import UpdateProfileStep as UpdateProfileStep
from flowline.flow.steps_send import EmailSendStep as EmailSendStep
from flowline.flow.steps_send import InAppContent as InAppContent
from flowline.flow.steps_send import InAppSendStep as InAppSendStep
from flowline.flow.steps_send import NotifyInternalStep as NotifyInternalStep
from flowline.flow.steps_send import PushSendStep as PushSendStep
from flowline.flow.steps_send import SendNext as SendNext
from flowline.flow.steps_send import SendStep as SendStep
from flowline.flow.steps_send import SendSteps
from flowline.flow.steps_send import SmsSendStep as SmsSendStep
from flowline.flow.triggers import AudienceSchedule as AudienceSchedule
from flowline.flow.triggers import AudienceTrigger as AudienceTrigger
from flowline.flow.triggers import CalendarSchedule as CalendarSchedule
from flowline.flow.triggers import DateTrigger as DateTrigger
from flowline.flow.triggers import EventProfileMatch as EventProfileMatch
from flowline.flow.triggers import EventTrigger as EventTrigger
from flowline.flow.triggers import FlowTrigger as FlowTrigger
from flowline.flow.triggers import Occurrence as Occurrence
from flowline.flow.triggers import ProfileChangeTrigger as ProfileChangeTrigger
from flowline.flow.triggers import SegmentEntryTrigger as SegmentEntryTrigger
from flowline.flow.triggers import Trigger as Trigger
from flowline.flow.waiting import (
    PROFILE_CHANGED,
    WaitDuration,
    WaitForChangeStep,
    WaitForEventStep,
)

# ---------------------------------------------------------------- triggers


# ---------------------------------------------------------------- steps


class WeekdayTime(_Strict):
    weekday: Weekday
    time: TimeOfDay


class PauseStep(_StepBase):
    """``for`` a duration (then, with ``until_time``, until that time of day), ``until`` a weekday
    and time, or ``until`` an exact date-time. Times are in ``timezone``, else the profile's
    ``timezone`` attribute, else UTC; an exact date-time with an offset is taken as it is."""

    type: Literal["pause"]
    # Bounded like every wait: a 0s pause would not wait at all (and a loop through it would spin).
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
        _check_zone(self.timezone)
        return self

    @property
    def needs_zone(self) -> bool:
        """Whether the pause reads a wall clock (and so a time zone)."""
        if self.until_time is not None or isinstance(self.until, WeekdayTime):
            return True
        return isinstance(self.until, datetime) and self.until.tzinfo is None


class WebhookStep(_StepBase):
    """POSTs the flow, step, journey and profile with ``data`` (Liquid templates) to ``url``."""

    type: Literal["webhook"]
    url: AnyHttpUrl
    data: TemplatedData = Field(default_factory=dict)
    next: StepId | None = None


class SplitVariant(_Strict):
    name: Identifier
    weight: float = Field(gt=0, le=1_000_000)
    # Where this variant goes; None: the step listed after the split.
    next: StepId | None = None


class SplitControl(_Strict):
    """A hold-out group: it gets none of the variants' messages and leaves (unless ``next``)."""

    weight: float = Field(gt=0, le=1_000_000)
    next: StepId | None = None


class SplitStep(_StepBase):
    """A/B test: each person takes one variant (or the control group), by weight, and always the
    same one for the same flow and step, also when re-entering or on a newer version."""

    type: Literal["split"]
    variants: list[SplitVariant] = Field(min_length=1, max_length=26)
    control: SplitControl | None = None

    @model_validator(mode="after")
    def _distinct(self) -> SplitStep:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be distinct")
        if "control" in names:
            raise ValueError("'control' is the control group's branch; name the variant otherwise")
        if len(self.variants) < 2 and self.control is None:
            raise ValueError("a split needs two variants, or one and a control group")
        return self

    def weighted_branches(self) -> list[tuple[str, float]]:
        branches = [(v.name, v.weight) for v in self.variants]
        return [*branches, ("control", self.control.weight)] if self.control else branches


# The longest offset from an every-year date (timing.date_wait_end looks up to two years ahead).
EVERY_YEAR_OFFSET = timedelta(days=365)


class WaitForDateStep(_StepBase):
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
        _check_zone(self.timezone)
        return self


class UpdateVariableStep(_StepBase):
    """Sets flow variables to the values of CEL expressions over profile, event, vars and flow."""

    type: Literal["update_variable"]
    set: dict[VariableName, Expression] = Field(min_length=1, max_length=50)
    next: StepId | None = None


class ExitStep(_StepBase):
    type: Literal["exit"]


Step = Annotated[
    PauseStep
    | SendSteps
    | NotifyInternalStep
    | WebhookStep
    | SplitStep
    | BranchStep
    | UpdateVariableStep
    | WaitForDateStep
    | UpdateProfileStep
    | TagStep
    | DoNotContactStep
    | StartConversationStep
    | WaitForEventStep
    | WaitForChangeStep
    | AddToFlowStep
    | CallApiStep
    | ExitStep,
    Field(discriminator="type"),
]


# ---------------------------------------------------------------- the document


class FlowDocument(_Strict):
    id: Identifier
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    trigger: Trigger
    settings: FlowSettings = Field(default_factory=FlowSettings)
    steps: list[Step] = Field(min_length=1)

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def listened_events(self) -> frozenset[str]:
        """The event names a journey of this flow may use while in flight (stop, goal, waits):
        the router signals a journey only the events its flow listens to."""
        names = {match.event for match in self.settings.stop_when}
        if self.settings.goal is not None:
            names.add(self.settings.goal.event)
        for step in self.steps:
            if isinstance(step, WaitForEventStep):
                names.update(condition.event for condition in step.conditions)
            elif isinstance(step, WaitForChangeStep):
                names.add(PROFILE_CHANGED)
        return frozenset(names)

    def dump(self) -> dict[str, Any]:
        """The canonical JSON form (aliases such as ``for``, durations as ``7d``)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=False)
