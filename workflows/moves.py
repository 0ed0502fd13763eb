"""Moving a waiting journey to a newer version of its flow (publish with ``move_journeys``).

The rule: a journey that waits (pause, wait_for_event, wait_for_change, wait_for_date, a call's
window or rate) at a step whose id the new version also has leaves that wait and continues as
new on the new version, at that step. A wait measured from entering the step (``pause for``, a
wait's ``timeout``) keeps counting from when the journey entered it, by the new step's
duration; any other wait (a time of day, a date, a call window) is computed again from the
new step; a step that does not wait runs at once. Events a wait_for_event heard are kept.
Any other journey stays on its version and records the request as ignored, with the reason.

A base class of the interpreter: workflow code, deterministic (tests/test_workflow_determinism.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow

from flowline.flow.document import FlowDocument
from flowline.flow.steps import PauseStep, Step, WaitForChangeStep, WaitForEventStep
from flowline.flow.steps.waiting import timeout_of
from flowline.journey import (
    RECORD_JOURNEY_MOVE,
    JourneyInput,
    JourneyMoved,
    JourneyRef,
    MoveRequest,
    Resume,
    VersionMove,
)
from workflows.patches import PATCHES
from workflows.search_attributes import FLOW_VERSION
from workflows.waits import ContinueAsNew, Waiting


@dataclass(frozen=True)
class PendingMove:
    request: MoveRequest
    step_id: str
    from_version: int


class Moving(Waiting):
    """The move signal and the hand-over to the new version. ``_move`` is set in ``__init__``."""

    _move: PendingMove | None

    def move(self, request: MoveRequest) -> None:
        """Taken if the journey waits now at a step the new version has; the wait then ends
        (see ``_must_continue_as_new``) and the run continues as new on the new version."""
        self._signals += 1
        journey, state = self._journey, self._state
        if journey is None or state.status != "running" or self._stop is not None:
            return  # ending anyway
        step_id = state.current_step
        reason: str | None = None
        if request.version <= journey.version:
            reason = f"the journey is on version {journey.version} already"
        elif step_id is None or state.waiting_for is None:
            reason = f"not waiting: the journey was running step {step_id!r}"
        elif not any(s.id == step_id for s in request.flow.steps):
            reason = f"version {request.version} has no step {step_id!r}"
        elif self._move is not None and self._move.request.version > request.version:
            reason = f"moving to version {self._move.request.version} already"
        if reason is not None:
            self._ignored(request.version, reason)
            return
        assert step_id is not None
        self._move = PendingMove(request, step_id, journey.version)

    def _ignored(self, version: int, reason: str) -> None:
        assert self._journey is not None
        self._state.moves.append(
            VersionMove(
                version=version,
                from_version=self._journey.version,
                step=self._state.current_step,
                at=workflow.now(),
                moved=False,
                reason=reason,
            )
        )

    def _must_continue_as_new(self) -> bool:
        return self._move_due() or super()._must_continue_as_new()

    def _move_due(self) -> bool:
        """A move waits for the wait it was taken in; a journey that left that wait meanwhile
        (its timer fired in the same workflow task) stays."""
        move = self._move
        if move is None:
            return False
        if self._state.current_step == move.step_id and self._state.waiting_for is not None:
            return True
        self._move = None
        self._ignored(move.request.version, f"the journey left step {move.step_id!r} before it could move")
        return False

    def _continue_as_new(self, journey: JourneyInput, handover: ContinueAsNew) -> None:
        move, self._move = self._move, None
        resume = self._handover(journey, handover)
        if move is None or move.step_id != handover.step_id or not PATCHES.version_move.new_path():
            workflow.continue_as_new(journey.model_copy(update={"resume": resume}))
        flow = move.request.flow
        moved = moved_resume(resume, flow, move, workflow.now())
        workflow.continue_as_new(
            journey.model_copy(update={"flow": flow, "version": move.request.version, "resume": moved})
        )

    async def _record_move(self, ref: JourneyRef, resume: Resume | None) -> None:
        """The first run on the new version shows it: FlowVersion in Temporal, the store's record."""
        if resume is None or resume.moved_from is None or not PATCHES.version_move.new_path():
            return
        workflow.upsert_search_attributes([FLOW_VERSION.value_set(ref.version)])
        await workflow.execute_local_activity(
            RECORD_JOURNEY_MOVE,
            JourneyMoved(journey=ref, from_version=resume.moved_from),
            start_to_close_timeout=timedelta(seconds=30),
        )


def moved_resume(resume: Resume, flow: FlowDocument, move: PendingMove, now: datetime) -> Resume:
    """Where a journey picks up on the new version: at the same step id, with the wait's end
    computed for the new step (see the module's rule) and new variables' defaults added."""
    step = flow.step(move.step_id)
    path = list(resume.path)
    entered = now
    if path and path[-1].step == step.id:
        entered = path[-1].entered_at
        path[-1] = path[-1].model_copy(update={"type": step.type})
    until = _wait_end(step, entered)
    declared = {name: d.default for name, d in flow.settings.variables.items()}
    record = VersionMove(
        version=move.request.version, from_version=move.from_version, step=step.id, at=now, moved=True
    )
    return resume.model_copy(
        update={
            "path": path,
            "until": until,
            "heard": resume.heard if until is not None else [],
            "variables": declared | resume.variables,
            "moved_from": move.from_version,
            "moves": [*resume.moves, record],
        }
    )


def _wait_end(step: Step, entered: datetime) -> datetime | None:
    """The end of a wait measured from entering the step; None: the step computes its own."""
    match step:
        case PauseStep(for_=timedelta() as duration, until_time=None):
            return entered + duration
        case WaitForEventStep() | WaitForChangeStep():
            return entered + timeout_of(step.timeout)
        case _:
            return None
