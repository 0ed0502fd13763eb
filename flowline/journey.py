"""What a journey is to the rest of the system: its id, its input, its visible state, and the
contracts of the activities it calls. Shared by the API, the worker and the workflow sandbox."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flowline.conditions.rules import Condition
from flowline.flow.document import FlowDocument
from flowline.flow.flow_settings import FrequencyCap
from flowline.flow.steps import (
    CallApiStep,
    DoNotContactStep,
    NotifyInternalStep,
    SendSteps,
    StartConversationStep,
    TagStep,
    UpdateProfileStep,
)
from flowline.flow.steps.control import OtherParticipant, PassedValue

# Temporal search attributes that find a journey in the UI. Ids only, never personal data:
# values of search attributes are not encrypted by payload codecs.
SEARCH_ATTRIBUTES: dict[str, str] = {
    "WorkspaceId": "Keyword",
    "FlowId": "Keyword",
    "FlowVersion": "Int",
    "ProfileId": "Keyword",
    "StepId": "Keyword",
}

# Activity names (the workflow calls them by name so that its sandbox imports no I/O code).
SEND_IN_APP = "send_in_app"
SEND_MESSAGE = "send_message"
NOTIFY_INTERNAL = "notify_internal"
DELIVER_WEBHOOK = "deliver_webhook"
RECORD_JOURNEY_END = "record_journey_end"
RECORD_JOURNEY_STEPS = "record_journey_steps"
PROFILE_TIME_ZONE = "profile_time_zone"
EVALUATE_EXPRESSIONS = "evaluate_expressions"
PROFILE_ATTRIBUTES = "profile_attributes"
EVALUATE_CONDITIONS = "evaluate_conditions"
PROFILE_STEP = "profile_step"
EVENTS_SINCE = "events_since"
RECORD_JOURNEY_MOVE = "record_journey_move"

# Signals a journey takes: an event of its profile (routed to it because its flow listens to
# the event's name), and a stop (from the API or the flow's lifecycle).
EVENT_SIGNAL = "event"
STOP_SIGNAL = "stop"
# Publishing with move_journeys asks journeys of older versions to move (workflows/moves.py).
MOVE_SIGNAL = "move"
ADD_TO_FLOW = "add_to_flow"
CALL_API = "call_api"
RESERVE_CALL_SLOT = "reserve_call_slot"


def journey_id(workspace_id: str, flow_id: str, profile_id: str, entry: str) -> str:
    """Deterministic: the same entry (say, the same triggering event) always names the same journey.

    It is also the Temporal workflow id, so a retried start finds the journey already there.
    A hash keeps it short and free of whatever characters profile and event ids contain.
    """
    raw = "\x1f".join((workspace_id, flow_id, profile_id, entry)).encode()
    digest = base64.b32encode(hashlib.sha256(raw).digest()).decode().lower().rstrip("=")
    return f"j-{flow_id}-{digest[:20]}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TriggerEvent(_Model):
    id: str
    name: str
    timestamp: datetime
    properties: dict[str, Any] = Field(default_factory=dict)


class PathEntry(_Model):
    step: str
    type: str
    entered_at: datetime
    left_at: datetime | None = None
    branch: str | None = None
    error: str | None = None
    # The journey an add_to_flow step started (or found started by an earlier attempt).
    started_journey: str | None = None


class HeardEvent(_Model):
    """An event a waiting journey counts, with the moment it heard it (its windows' clock)."""

    event: TriggerEvent
    heard_at: datetime


class VersionMove(_Model):
    """A request to move to a newer version of the flow: taken, or ignored with the reason."""

    version: int
    from_version: int
    step: str | None
    at: datetime
    moved: bool
    reason: str | None = None


class Resume(_Model):
    """Where a journey that continued as new picks up: its step, its bookkeeping, and, when it was
    waiting, the moment its timer ends and the events its wait counted so far."""

    step_id: str
    entered_at: datetime
    visits: dict[str, int] = Field(default_factory=dict)
    path: list[PathEntry] = Field(default_factory=list)
    path_dropped: int = 0
    variables: dict[str, Any] = Field(default_factory=dict)
    converted_at: datetime | None = None
    until: datetime | None = None
    heard: list[HeardEvent] = Field(default_factory=list)
    runs: int = 1
    # Set on the first run after a move to a newer version: the version it left (the new run
    # records the move in the store).
    moved_from: int | None = None
    moves: list[VersionMove] = Field(default_factory=list)
    # How many path entries (by seq) the journey_steps table has (see workflows/path_records.py).
    path_written: int = 0


class JourneyLimits(_Model):
    """When a run continues as new (Temporal refuses the 10,001st signal of a run, and histories
    slow down long before their hard limits): tests lower these to drive journeys past them."""

    # Low enough that replaying a whole run (after a cache eviction) stays well within a workflow
    # task's deadlock timeout on a busy 2-core machine.
    signals_per_run: int = Field(default=1_000, ge=1, le=9_000)
    history_events: int = Field(default=4_000, ge=50, le=40_000)
    path_entries_kept: int = Field(default=200, ge=1)


class JourneyInput(_Model):
    """Everything a journey needs to run; the flow version is frozen into it."""

    journey_id: str
    workspace_id: str
    flow: FlowDocument
    version: int
    profile_id: str
    event: TriggerEvent | None = None
    variables: dict[str, Any] = Field(default_factory=dict)
    limits: JourneyLimits = Field(default_factory=JourneyLimits)
    resume: Resume | None = None


JourneyStatus = Literal["running", "completed", "stopped", "failed"]


class JourneyState(_Model):
    """What ``GET /v1/journeys/{id}`` shows of a journey in flight (a workflow query)."""

    status: JourneyStatus = "running"
    current_step: str | None = None
    waiting_for: str | None = None
    path: list[PathEntry] = Field(default_factory=list)
    variables: dict[str, Any] = Field(default_factory=dict)
    exit_reason: str | None = None
    entered_at: datetime | None = None
    converted_at: datetime | None = None
    # Entries dropped from the front of ``path`` when the journey continued as new.
    path_dropped: int = 0
    runs: int = 1
    # Move requests from publishing with move_journeys: taken or ignored (with the reason).
    moves: list[VersionMove] = Field(default_factory=list)


# ---------------------------------------------------------------- activity contracts


class JourneyRef(_Model):
    """Who is in which flow: enough for an activity to load the rest from the store."""

    journey_id: str
    workspace_id: str
    flow_id: str
    version: int
    profile_id: str


class JourneyEnd(_Model):
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


class JourneySteps(_Model):
    """Path entries of a journey to record (upserted by seq: ``start`` is the first one's)."""

    journey: JourneyRef
    start: int
    path: list[PathEntry]


class TemplateScope(_Model):
    """The data Liquid templates see besides the profile (which activities load themselves)."""

    event: dict[str, Any] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)
    flow: dict[str, Any] = Field(default_factory=dict)


class SendInAppRequest(_Model):
    journey: JourneyRef
    step_id: str
    iteration: int
    title: str
    body: str
    data: dict[str, Any] = Field(default_factory=dict)
    scope: TemplateScope
    # Set when nothing but the end follows this step: the activity records the end with its own
    # write, which spares the journey a local activity (see JourneyInterpreter).
    ends_journey: JourneyEnd | None = None


class SendRequest(_Model):
    """A send step's visit: the activity sends to each recipient once (the delivery ledger)."""

    journey: JourneyRef
    step: SendSteps
    iteration: int
    scope: TemplateScope
    # The flow's frequency cap of this step's channel, if any (counted across every flow).
    cap: FrequencyCap | None = None
    # The journey's clock: the ledger's time and the cap's window read it, as timers do.
    now: datetime
    ends_journey: JourneyEnd | None = None


class NotifyRequest(_Model):
    journey: JourneyRef
    step: NotifyInternalStep
    iteration: int
    scope: TemplateScope
    now: datetime
    ends_journey: JourneyEnd | None = None


class WebhookRequest(_Model):
    journey: JourneyRef
    step_id: str
    iteration: int
    url: str
    data: dict[str, Any] = Field(default_factory=dict)
    scope: TemplateScope
    ends_journey: JourneyEnd | None = None


class ExpressionsRequest(_Model):
    journey: JourneyRef
    expressions: dict[str, str]
    scope: TemplateScope


class ExpressionsResult(_Model):
    values: dict[str, Any] = Field(default_factory=dict)
    # name -> why it could not be computed (the variable keeps its value)
    errors: dict[str, str] = Field(default_factory=dict)


class ProfileAttributesRequest(_Model):
    journey: JourneyRef
    names: list[str]


class ProfileAttributes(_Model):
    # Only the names asked for that the profile has.
    values: dict[str, Any] = Field(default_factory=dict)


class NamedCondition(_Model):
    name: str
    when: Condition


class ConditionsRequest(_Model):
    """Which of ``conditions`` (in order) holds first for the journey's profile at ``now``."""

    journey: JourneyRef
    conditions: list[NamedCondition]
    # The journey's clock (workflow.now()), so that windows such as "within 7d" read the same
    # time as the journey's timers.
    now: datetime


class ConditionsResult(_Model):
    # The name of the first condition that holds, or "else".
    branch: str
    error: str | None = None


class EventsRequest(_Model):
    journey: JourneyRef
    names: list[str]
    since: datetime


class EventsFound(_Model):
    events: list[TriggerEvent] = Field(default_factory=list)


class AddToFlowRequest(_Model):
    journey: JourneyRef
    step_id: str
    iteration: int
    flow: str
    variables: dict[str, PassedValue] = Field(default_factory=dict)
    # None: the journey's own profile.
    participant: OtherParticipant | None = None
    scope: TemplateScope


class ProfileStepRequest(_Model):
    """A step that changes the person: update_profile, tag, do_not_contact, start_conversation."""

    journey: JourneyRef
    step: Annotated[
        UpdateProfileStep | TagStep | DoNotContactStep | StartConversationStep, Field(discriminator="type")
    ]
    iteration: int
    scope: TemplateScope
    ends_journey: JourneyEnd | None = None


class StepResult(_Model):
    """The branch a step's activity took, and why when it is not the happy one."""

    branch: str
    delivery_id: str | None = None
    error: str | None = None
    started_journey: str | None = None
    # The activity also recorded the journey's end (it was asked to, and it succeeded).
    journey_ended: bool = False


class MoveRequest(_Model):
    """Move to ``version`` (whose document is ``flow``) if waiting at a step it also has."""

    version: int = Field(ge=1)
    flow: FlowDocument


class JourneyMoved(_Model):
    """The journey (``journey.version`` is the new version) moved from ``from_version``."""

    journey: JourneyRef
    from_version: int


class StopRequest(_Model):
    reason: str = Field(min_length=1, max_length=200)


class CallApiRequest(_Model):
    journey: JourneyRef
    step: CallApiStep
    iteration: int
    # The retry policy's maximum attempts: the last attempt reports a 5xx or a failure as its
    # branch instead of raising for another retry.
    attempts: int
    scope: TemplateScope


class CallApiResult(_Model):
    branch: str
    status_code: int | None = None
    error: str | None = None
    # Every variable the step saves: the value found, or null.
    variables: dict[str, Any] = Field(default_factory=dict)


class CallSlotRequest(_Model):
    """A call from a rate-limited step asks for a slot at ``at`` (the workflow's time)."""

    journey: JourneyRef
    step_id: str
    period_seconds: int
    limit: int
    at: datetime


class CallSlot(_Model):
    at: datetime
