"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

from flowline.flow.steps.waiting import PROFILE_CHANGED
from flowline.flow.triggers import SEGMENT_ENTERED, SEGMENT_EXITED
from flowline.journey import JourneyState
from flowline.store.inbox import is_consumable

MAX_EVENTS_PER_CALL = 1000
# Paging past this is no use case, and past 2**63 the databases cannot even compare (a 500 before).
MAX_OFFSET = 1_000_000_000
# Events the engine writes that start flows or stop journeys: a client sending them would fake
# profile changes and segment entries.
RESERVED_EVENTS = frozenset({PROFILE_CHANGED, SEGMENT_ENTERED, SEGMENT_EXITED})


class EventIn(BaseModel):
    """One event. ``id`` makes ingestion idempotent: the same id twice is stored and routed once."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    profile_id: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    timestamp: datetime | None = None
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_EVENTS:
            raise ValueError(f"'{value}' is written by Flowline itself and cannot be sent")
        return value

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Fault(BaseModel):
    path: str
    message: str


class RejectedEvent(BaseModel):
    index: int
    id: str | None = None
    faults: list[Fault]


class EventsAccepted(BaseModel):
    accepted: int = Field(description="valid events stored now")
    duplicates: int = Field(description="valid events whose id was stored before (not routed again)")
    rejected: list[RejectedEvent]
    journeys: list[str] = Field(description="journeys these events started")


class ProfileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attributes: dict[str, Any] = Field(
        default_factory=dict,
        description="merged; null erases an attribute; declared attributes (PUT /v1/attributes) are "
        "checked against their type; `email` and `phone` are the contact data",
    )
    referrer_id: str | None = Field(
        default=None, min_length=1, max_length=200, description="who referred the person; null clears"
    )
    friends: list[str] = Field(
        default_factory=list, max_length=1000, description="profile ids added as friends (mutual)"
    )


MAX_PROFILES_PER_CALL = 1000


class ProfileEntry(BaseModel):
    """One profile of a batch: its id (or, matched by email, its ``attributes.email``) and the
    attributes merged into it."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="the person's id; with `match: email` optional (the id of a profile created for "
        "an email nobody has yet)",
    )
    attributes: dict[str, Any] = Field(
        default_factory=dict, description="merged as PUT /v1/profiles/{id} merges; null erases"
    )


class ProfilesBatchIn(BaseModel):
    """Up to 1,000 profiles merged in one transaction; each invalid entry is rejected by its index
    with nothing of it written, the valid ones kept."""

    model_config = ConfigDict(extra="forbid")

    match: Literal["id", "email"] = Field(
        default="id", description="find each profile by its `id`, or by its `attributes.email`"
    )
    blank: Literal["ignore", "clear"] = Field(
        default="ignore",
        description='a blank value (`""`, or only spaces: an empty CSV cell): `ignore` keeps what is '
        "stored, `clear` erases it; null always erases",
    )
    dry_run: bool = Field(default=False, description="check every entry and answer, write nothing")
    triggers: bool = Field(
        default=True,
        description="changes start profile_change flows and reach waiting journeys (after the answer); "
        "false: no profile_changed event is recorded",
    )
    profiles: list[ProfileEntry] = Field(max_length=MAX_PROFILES_PER_CALL)


class ProfileResult(BaseModel):
    index: int = Field(description="the entry's position in `profiles`")
    id: str | None = Field(description="the profile's id (null for a rejected entry without one)")
    outcome: Literal["created", "updated", "unchanged", "rejected"]
    faults: list[Fault] = Field(default_factory=list, description="why a rejected entry was rejected")


class ProfilesBatchResult(BaseModel):
    created: int
    updated: int
    unchanged: int
    rejected: int
    dry_run: bool = Field(description="true: nothing was written")
    results: list[ProfileResult] = Field(description="one per entry, in the order sent")


# Request bodies routes parse themselves (BatchRoute), published as OpenAPI components.
SELF_PARSED_BODIES: tuple[type[BaseModel], ...] = (EventIn, ProfilesBatchIn)


class PushToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=500)
    platform: Literal["ios", "android", "web"]


class PushTokensIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: list[PushToken] = Field(max_length=100, description="replaces the person's tokens")


class JourneySummary(BaseModel):
    id: str
    flow_id: str
    version: int
    profile_id: str
    status: str
    last_step: str | None = None
    exit_reason: str | None = None
    started_at: datetime
    ended_at: datetime | None = None
    current_step: str | None = Field(
        default=None,
        description="where the journey is: its last step once ended; while it runs, the step it was "
        "last recorded at (journey_steps: written at waits of a minute or more)",
    )


class JourneyDetail(JourneySummary):
    waiting_for: str | None = Field(default=None, description="what the journey waits for now")
    path: list[dict[str, Any]] = Field(default_factory=list)
    variables: dict[str, Any] = Field(default_factory=dict)
    moves: list[dict[str, Any]] = Field(
        default_factory=list, description="requests to move to a newer version: taken, or ignored and why"
    )
    live: bool = Field(description="true when current_step and path come from the running workflow")

    @classmethod
    def build(
        cls, row: dict[str, Any], state: JourneyState | None, stored: list[dict[str, Any]]
    ) -> JourneyDetail:
        """From the workflow while it answers; else from the store: the path the journey recorded
        (journey_steps) and its current step. ``stored`` is that path, numbered by ``seq``."""
        summary = JourneySummary.model_validate(row).model_dump()
        if state is None:
            return cls(**summary, path=stored, live=False)
        # Entries a long journey dropped when it continued as new are in the store only.
        dropped = [entry for entry in stored if entry["seq"] < state.path_dropped]
        path = [
            {"seq": state.path_dropped + i, **p.model_dump(mode="json")} for i, p in enumerate(state.path)
        ]
        return cls(
            **summary | {"current_step": state.current_step},
            waiting_for=state.waiting_for,
            path=[*dropped, *path],
            variables=state.variables,
            moves=[m.model_dump(mode="json") for m in state.moves],
            live=True,
        )


class ProfileOut(BaseModel):
    id: str
    attributes: dict[str, Any]
    referrer_id: str | None = None
    friends: list[str] = Field(default_factory=list)
    push_tokens: list[PushToken] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    do_not_contact: list[dict[str, Any]] = Field(
        default_factory=list,
        description="each {channel, sender}: channel 'all' and sender null mean every channel / sender",
    )
    created_at: datetime
    updated_at: datetime
    journeys: list[JourneySummary] = Field(default_factory=list)
    segments: list[str] | None = Field(
        default=None,
        description="GET /v1/profiles/{id} only: the segments the person is in, as last evaluated",
    )


class ProfilesFound(BaseModel):
    profiles: list[ProfileOut]


class InboxMessage(BaseModel):
    id: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None = None
    consumed_at: datetime | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def read(self) -> bool:
        return self.read_at is not None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def consumable(self) -> bool:
        """A reward: ``POST /v1/inbox/{id}/consume`` redeems it once."""
        return is_consumable(self.data)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def consumed(self) -> bool:
        return self.consumed_at is not None


class StartJourneyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile_id: str = Field(min_length=1, max_length=200)
    variables: dict[str, Any] = Field(default_factory=dict)
    entry_id: str | None = Field(
        default=None,
        max_length=200,
        description="makes the call idempotent: the same entry_id starts one journey",
    )


class _Answer(BaseModel):
    """An answer body: exactly these fields (the document says so, schemathesis holds us to it)."""

    model_config = ConfigDict(extra="forbid")


class FlowOut(_Answer):
    id: str
    name: str
    status: str = Field(description="draft, running, draining, stopped or finished")
    in_flight: int = Field(description="journeys in flight over all versions")
    current_version: int | None = Field(description="the version new entries use; null while a draft")
    draft: dict[str, Any] = Field(description="the flow document as last saved (FlowDocument)")
    created_at: datetime
    updated_at: datetime


class FlowListed(FlowOut):
    last_published_at: datetime | None = Field(description="when its latest version was published")
    entered_last_day: int = Field(description="journeys that entered it in the last 24 hours (all versions)")
    entered_last_week: int = Field(description="journeys that entered it in the last 7 days (all versions)")
    entered: int = Field(description="journeys that ever entered it (all versions)")
    conversion_rate: float | None = Field(
        description="journeys that reached the goal over those that entered; null without a goal or entries"
    )


class FlowList(_Answer):
    flows: list[FlowListed]


class GraphEdge(_Answer):
    source: str = Field(description="the step the branches leave")
    target: str | None = Field(description="the step they lead to; null: they end the journey")
    branches: list[str] = Field(description="the branches that take this edge")
    implicit: bool = Field(
        description="no branch names the target: the journey goes on to the step listed next"
    )


class FlowValid(_Answer):
    valid: Literal[True]
    flow: dict[str, Any] = Field(description="the document in its canonical form (FlowDocument)")
    edges: list[GraphEdge] = Field(description="its step graph, as GET /v1/flows/{id}/graph draws it")


class FlowGraphOut(_Answer):
    flow_id: str
    version: int | None = Field(description="the version drawn; null: the draft (never published)")
    document: dict[str, Any] = Field(
        description="that version's document (FlowDocument): trigger, settings, steps"
    )
    edges: list[GraphEdge]


class JourneyStarted(_Answer):
    journey_id: str
    flow_id: str
    version: int


class FlowPublished(_Answer):
    id: str
    status: Literal["running"]
    version: int
    journeys_asked_to_move: int | None = Field(default=None, description="with move_journeys only")


class FlowEntriesEnded(_Answer):
    id: str
    status: Literal["draining", "stopped"]
    journeys_stopped: int | None = Field(default=None, description="stop only: journeys that took the stop")


class JourneyStopping(_Answer):
    journey_id: str
    status: Literal["stopping"]
    reason: str
