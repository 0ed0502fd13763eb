"""What a journey's activities are asked and answer (their contracts are flowline/journey/contracts.py).

Every step's request is a ``StepVisit`` (whose journey, which visit of the step, the template
data); a step whose activity may also record the journey's end is an ``EndingStepVisit``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AliasChoices, Field

from flowline.conditions.rules import Condition
from flowline.flow.flow_settings import FrequencyCap
from flowline.flow.steps import (
    CallApiStep,
    CustomStep,
    DoNotContactStep,
    ExportStep,
    NotifyInternalStep,
    SendSteps,
    StartConversationStep,
    TagStep,
    UpdateProfileStep,
)
from flowline.flow.steps.control import OtherParticipant, PassedValue
from flowline.journey.base import StrictModel
from flowline.journey.state import JourneyStatus, PathEntry, TriggerEvent


class JourneyRef(StrictModel):
    """Who is in which flow: enough for an activity to load the rest from the store."""

    journey_id: str
    workspace_id: str
    flow_id: str
    version: int
    profile_id: str


class JourneyEnd(StrictModel):
    journey: JourneyRef
    status: JourneyStatus
    last_step: str | None
    exit_reason: str
    ended_at: datetime
    # The path entries not yet in journey_steps in their final form, the first numbered ``path_start``.
    path: list[PathEntry] = Field(default_factory=list)
    path_start: int = 0

    def after_step(self, branch: str, at: datetime, error: str | None = None) -> JourneyEnd:
        """This end as the step activity that ends the journey records it: the step's visit (the
        path's open last entry) left by ``branch`` at ``at``, then the exit step's, if one follows."""
        path = [entry.model_copy() for entry in self.path]
        if path and path[-1].left_at is None:
            current = path[-1]
            current.left_at, current.branch, current.error = at, branch, error
            if self.last_step is not None and self.last_step != current.step:
                path.append(
                    PathEntry(step=self.last_step, type="exit", entered_at=at, left_at=at, branch="exit")
                )
        return self.model_copy(update={"ended_at": at, "path": path})


class JourneySteps(StrictModel):
    """Path entries of a journey to record (upserted by seq: ``start`` is the first one's)."""

    journey: JourneyRef
    start: int
    path: list[PathEntry]


class JourneyMoved(StrictModel):
    """The journey (``journey.version`` is the new version) moved from ``from_version``."""

    journey: JourneyRef
    from_version: int


class TemplateScope(StrictModel):
    """The data Liquid templates see besides the profile (which activities load themselves)."""

    event: dict[str, Any] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)
    flow: dict[str, Any] = Field(default_factory=dict)


# ---------------------------------------------------------------- step visits


class StepVisit(StrictModel):
    """What every step's activity is told: whose journey, which visit of the step (1 on the first;
    ledger rows and idempotency keys are per visit), and the data its templates see."""

    journey: JourneyRef
    # Activity tasks scheduled by a worker from before the word "visit" still say "iteration".
    visit: int = Field(validation_alias=AliasChoices("visit", "iteration"))
    scope: TemplateScope


class EndingStepVisit(StepVisit):
    # Set when nothing but the end follows this step: the activity records the end with its own
    # write, which spares the journey a local activity (see workflows/interpreter/).
    ends_journey: JourneyEnd | None = None


class SendInAppRequest(EndingStepVisit):
    """An in-app message of a journey from before send-channels-v1 (newer ones send SendRequest)."""

    step_id: str
    title: str
    body: str
    data: dict[str, Any] = Field(default_factory=dict)


class SendRequest(EndingStepVisit):
    """A send step's visit: the activity sends to each recipient once (the delivery ledger)."""

    step: SendSteps
    # The flow's frequency cap of this step's channel, if any (counted across every flow).
    cap: FrequencyCap | None = None
    # The journey's clock: the ledger's time and the cap's window read it, as timers do.
    now: datetime


class NotifyRequest(EndingStepVisit):
    step: NotifyInternalStep
    now: datetime


class WebhookRequest(EndingStepVisit):
    step_id: str
    url: str
    data: dict[str, Any] = Field(default_factory=dict)


class ProfileStepRequest(EndingStepVisit):
    """A step that changes the person: update_profile, tag, do_not_contact, start_conversation."""

    step: Annotated[
        UpdateProfileStep | TagStep | DoNotContactStep | StartConversationStep, Field(discriminator="type")
    ]


class ExportRequest(EndingStepVisit):
    """An export step's visit: its records go to the outbox once (keyed by journey, step, visit)."""

    step: ExportStep
    # The journey's clock: the record's time (``ts``), as timers read it.
    now: datetime


class AddToFlowRequest(StepVisit):
    step_id: str
    flow: str
    variables: dict[str, PassedValue] = Field(default_factory=dict)
    # None: the journey's own profile.
    participant: OtherParticipant | None = None


class CallApiRequest(StepVisit):
    step: CallApiStep
    # The retry policy's maximum attempts: the last attempt reports a 5xx or a failure as its
    # branch instead of raising for another retry.
    attempts: int


class CustomElementRequest(StepVisit):
    """A custom step's visit. The element's definition is not in it: the activity reads it from
    the store (headers with credentials never enter the history)."""

    step: CustomStep
    # As CallApiRequest's: the last attempt reports a 5xx or no answer as the ``error`` outcome.
    attempts: int


class CustomElementResult(StrictModel):
    outcome: str
    status_code: int | None = None
    error: str | None = None
    variables: dict[str, Any] = Field(default_factory=dict)
    # The version of a declarative element that ran (None: a code element, or none found).
    element_version: int | None = None


class StepResult(StrictModel):
    """The branch a step's activity took, and why when it is not the happy one."""

    branch: str
    delivery_id: str | None = None
    error: str | None = None
    started_journey: str | None = None
    # The activity also recorded the journey's end (it was asked to, and it succeeded).
    journey_ended: bool = False


class CallApiResult(StrictModel):
    branch: str
    status_code: int | None = None
    error: str | None = None
    # Every variable the step saves: the value found, or null.
    variables: dict[str, Any] = Field(default_factory=dict)


# ---------------------------------------------------------------- reads and bookkeeping


class ExpressionsRequest(StrictModel):
    journey: JourneyRef
    expressions: dict[str, str]
    scope: TemplateScope


class ExpressionsResult(StrictModel):
    values: dict[str, Any] = Field(default_factory=dict)
    # name -> why it could not be computed (the variable keeps its value)
    errors: dict[str, str] = Field(default_factory=dict)


class ProfileAttributesRequest(StrictModel):
    journey: JourneyRef
    names: list[str]


class ProfileAttributes(StrictModel):
    # Only the names asked for that the profile has.
    values: dict[str, Any] = Field(default_factory=dict)


class NamedCondition(StrictModel):
    name: str
    when: Condition


class ConditionsRequest(StrictModel):
    """Which of ``conditions`` (in order) holds first for the journey's profile at ``now``."""

    journey: JourneyRef
    conditions: list[NamedCondition]
    # The journey's clock (workflow.now()), so that windows such as "within 7d" read the same
    # time as the journey's timers.
    now: datetime


class ConditionsResult(StrictModel):
    # The name of the first condition that holds, or "else".
    branch: str
    error: str | None = None


class EventsRequest(StrictModel):
    journey: JourneyRef
    names: list[str]
    since: datetime


class EventsFound(StrictModel):
    events: list[TriggerEvent] = Field(default_factory=list)


class CallSlotRequest(StrictModel):
    """A call from a rate-limited step asks for a slot at ``at`` (the workflow's time)."""

    journey: JourneyRef
    step_id: str
    period_seconds: int
    limit: int
    at: datetime


class CallSlot(StrictModel):
    at: datetime
