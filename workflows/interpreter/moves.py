"""Moving a waiting journey to a newer version of its flow (publish with ``move_journeys``).

The rule: a journey that waits (pause, wait_for_event, wait_for_change, wait_for_date, a call's
window or rate) at a step whose id the new version also has leaves that wait and continues as
new on the new version, at that step. A wait measured from entering the step (``pause for``, a
wait's ``timeout``) keeps counting from when the journey entered it, by the new step's
duration; any other wait (a time of day, a date, a call window) is computed again from the
new step; a step that does not wait runs at once. Events a wait_for_event heard are kept.
Any other journey stays on its version and records the request as ignored, with the reason.

Workflow code, deterministic (tests/test_workflow_determinism.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

from flowline.flow.document import FlowDocument
from flowline.flow.steps import PauseStep, Step, WaitForChangeStep, WaitForEventStep
from flowline.flow.steps.waiting import timeout_of
from flowline.journey import (
    JourneyInput,
    JourneyMoved,
    JourneyRef,
    MoveRequest,
    Resume,
    VersionMove,
    contracts,
)
from workflows.interpreter.handover import ContinueAsNew, handover
from workflows.interpreter.run_state import PendingMove, RunState
from workflows.patches import PATCHES
from workflows.search_attributes import FLOW_VERSION


def take_move(run: RunState, request: MoveRequest) -> None:
    """The move signal: taken if the journey waits now at a step the new version has; the wait
    then ends (see ``move_due``) and the run continues as new on the new version."""
    run.signals += 1
    if run.journey is None:
        run.early.append(request)  # before the run started: the run takes it (take_early)
        return
    apply_move(run, request)


def apply_move(run: RunState, request: MoveRequest) -> None:
    journey, state = run.journey, run.state
    if journey is None or state.status != "running" or run.stop is not None:
        return  # ending anyway
    step_id = state.current_step
    reason: str | None = None
    if request.version <= journey.version:
        reason = f"the journey is on version {journey.version} already"
    elif step_id is None or state.waiting_for is None:
        reason = f"not waiting: the journey was running step {step_id!r}"
    elif not any(s.id == step_id for s in request.flow.steps):
        reason = f"version {request.version} has no step {step_id!r}"
    elif run.move is not None and run.move.request.version > request.version:
        reason = f"moving to version {run.move.request.version} already"
    if reason is not None:
        _ignored(run, request.version, reason)
        return
    assert step_id is not None
    run.move = PendingMove(request, step_id, journey.version)


def _ignored(run: RunState, version: int, reason: str) -> None:
    assert run.journey is not None
    run.state.moves.append(
        VersionMove(
            version=version,
            from_version=run.journey.version,
            step=run.state.current_step,
            at=workflow.now(),
            moved=False,
            reason=reason,
        )
    )


def move_due(run: RunState) -> bool:
    """A move waits for the wait it was taken in; a journey that left that wait meanwhile
    (its timer fired in the same workflow task) stays."""
    move = run.move
    if move is None:
        return False
    if run.state.current_step == move.step_id and run.state.waiting_for is not None:
        return True
    run.move = None
    _ignored(run, move.request.version, f"the journey left step {move.step_id!r} before it could move")
    return False


def continue_as_new(run: RunState, journey: JourneyInput, handing: ContinueAsNew) -> None:
    """Hands over to a new run: on the new version if a move is due at the step handed over."""
    move, run.move = run.move, None
    resume = handover(run, journey, handing)
    if move is None or move.step_id != handing.step_id or not PATCHES.version_move.new_path():
        workflow.continue_as_new(journey.model_copy(update={"resume": resume}))
    flow = move.request.flow
    moved = moved_resume(resume, flow, move, workflow.now())
    workflow.continue_as_new(
        journey.model_copy(update={"flow": flow, "version": move.request.version, "resume": moved})
    )


async def record_move(ref: JourneyRef, resume: Resume | None) -> None:
    """The first run on the new version shows it: FlowVersion in Temporal, the store's record."""
    if resume is None or resume.moved_from is None or not PATCHES.version_move.new_path():
        return
    workflow.upsert_search_attributes([FLOW_VERSION.value_set(ref.version)])
    await workflow.execute_local_activity(
        contracts.record_journey_move,
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
