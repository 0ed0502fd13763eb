"""A journey as the API, the worker and the workflow see it: its id, its input, the state it
shows, and what a run hands over to the next one (continue-as-new)."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from flowline.flow.document import FlowDocument
from flowline.journey.base import StrictModel

# Temporal search attributes that find a journey in the UI. Ids only, never personal data:
# values of search attributes are not encrypted by payload codecs.
SEARCH_ATTRIBUTES: dict[str, str] = {
    "WorkspaceId": "Keyword",
    "FlowId": "Keyword",
    "FlowVersion": "Int",
    "ProfileId": "Keyword",
    "StepId": "Keyword",
}


def journey_id(workspace_id: str, flow_id: str, profile_id: str, entry: str) -> str:
    """Deterministic: the same entry (say, the same triggering event) always names the same journey.

    It is also the Temporal workflow id, so a retried start finds the journey already there.
    A hash keeps it short and free of whatever characters profile and event ids contain.
    """
    raw = "\x1f".join((workspace_id, flow_id, profile_id, entry)).encode()
    digest = base64.b32encode(hashlib.sha256(raw).digest()).decode().lower().rstrip("=")
    return f"j-{flow_id}-{digest[:20]}"


class TriggerEvent(StrictModel):
    id: str
    name: str
    timestamp: datetime
    properties: dict[str, Any] = Field(default_factory=dict)


class PathEntry(StrictModel):
    step: str
    type: str
    entered_at: datetime
    left_at: datetime | None = None
    branch: str | None = None
    error: str | None = None
    # The journey an add_to_flow step started (or found started by an earlier attempt).
    started_journey: str | None = None


class HeardEvent(StrictModel):
    """An event a waiting journey counts, with the moment it heard it (its windows' clock)."""

    event: TriggerEvent
    heard_at: datetime


class VersionMove(StrictModel):
    """A request to move to a newer version of the flow: taken, or ignored with the reason."""

    version: int
    from_version: int
    step: str | None
    at: datetime
    moved: bool
    reason: str | None = None


class Resume(StrictModel):
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
    # How many path entries (by seq) the journey_steps table has (see workflows/interpreter/path_records.py).
    path_written: int = 0


class JourneyLimits(StrictModel):
    """When a run continues as new (Temporal refuses the 10,001st signal of a run, and histories
    slow down long before their hard limits): tests lower these to drive journeys past them."""

    # Low enough that replaying a whole run (after a cache eviction) stays well within a workflow
    # task's deadlock timeout on a busy 2-core machine.
    signals_per_run: int = Field(default=1_000, ge=1, le=9_000)
    history_events: int = Field(default=4_000, ge=50, le=40_000)
    path_entries_kept: int = Field(default=200, ge=1)


class JourneyInput(StrictModel):
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


class JourneyState(StrictModel):
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
