"""Everything one run of a journey mutates, in one place: the interpreter, its waits, its moves
and its path records all receive this object (workflow code: the determinism rules apply)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from flowline.journey import (
    HeardEvent,
    JourneyInput,
    JourneyRef,
    JourneyState,
    JourneyStatus,
    MoveRequest,
    Resume,
    TriggerEvent,
)


@dataclass(frozen=True)
class PendingMove:
    """A move signal taken: it happens when the wait it was taken in hands over (see moves.py)."""

    request: MoveRequest
    step_id: str
    from_version: int


@dataclass
class RunState:
    # What the state query shows (and what the run returns).
    state: JourneyState = field(default_factory=JourneyState)
    # The input of this run; None until ``run`` starts (a signal may come first).
    journey: JourneyInput | None = None
    ref: JourneyRef | None = None
    # How many times each step was entered, across runs: a step's visit number.
    visits: Counter[str] = field(default_factory=Counter)
    # The lean-bookkeeping patch holds for this run (PATCHES.lean_bookkeeping).
    lean: bool = False
    # The StepId search attribute as last upserted.
    step_attribute: str | None = None
    # A step's activity recorded the journey's end (only the end followed it).
    end_recorded: bool = False
    # Set by a stop signal or a stop_when/goal event: (status, reason); the walk is cancelled.
    stop: tuple[JourneyStatus, str] | None = None
    # Events heard while a wait listens (None: no wait listens now).
    inbox: list[HeardEvent] | None = None
    # Signals this run took (a run continues as new before Temporal's limit).
    signals: int = 0
    # Event and move signals handled before ``run`` started: the SDK handles the signals of a
    # run's first workflow task before its run method (PATCHES.early_signals).
    early: list[TriggerEvent | MoveRequest] = field(default_factory=list)
    # Where the previous run stopped, until the step it stopped in takes it.
    resume: Resume | None = None
    # The flow's max_duration from the journey's entry: every wait ends there.
    deadline: datetime | None = None
    move: PendingMove | None = None
    # Entries (by seq) in journey_steps; the last of them was written while still open.
    path_written: int = 0
