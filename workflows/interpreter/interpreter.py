"""The journey interpreter: one profile walking through one flow version, step by step.

Deterministic: time comes from ``workflow.now()``, waiting from durable timers, every side
effect from an activity. Any change here that would make a recorded history produce other
commands must sit behind a patch (workflows/patches.py, docs/patches.md; tests/test_replay.py
replays every recorded history on each run). workflows/journey.py is the thin workflow definition around it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import Any, assert_never

from temporalio import workflow
from temporalio.exceptions import ActivityError, CancelledError

from flowline.flow.document import FlowDocument
from flowline.flow.experiments import assign
from flowline.flow.graph import ADDED, CONTINUE, CONTROL, FAILED, ending_after, following, next_step
from flowline.flow.steps import (
    AddToFlowStep,
    BranchStep,
    CallApiStep,
    CustomStep,
    DoNotContactStep,
    ExitStep,
    ExportStep,
    NotifyInternalStep,
    PauseStep,
    SendStep,
    SendSteps,
    SplitStep,
    StartConversationStep,
    Step,
    TagStep,
    UpdateProfileStep,
    UpdateVariableStep,
    WaitForChangeStep,
    WaitForDateStep,
    WaitForEventStep,
    WebhookStep,
)
from flowline.journey import (
    AddToFlowRequest,
    ExportRequest,
    ExpressionsRequest,
    JourneyEnd,
    JourneyInput,
    JourneyRef,
    JourneyState,
    JourneyStatus,
    MoveRequest,
    NotifyRequest,
    PathEntry,
    ProfileStepRequest,
    SendInAppRequest,
    StepResult,
    TemplateScope,
    TriggerEvent,
    WebhookRequest,
    contracts,
)
from workflows.interpreter import moves, signals, waits
from workflows.interpreter.calls import SleepUntil, call_api, run_custom_element
from workflows.interpreter.handover import ContinueAsNew
from workflows.interpreter.path_records import unwritten, write_path
from workflows.interpreter.run_state import RunState
from workflows.interpreter.sends import prepare_send
from workflows.interpreter.step_activities import HEARTBEAT_OPTIONS, first_branch, run_activity
from workflows.interpreter.waits import DeadlineReached
from workflows.patches import PATCHES
from workflows.search_attributes import STEP_ID


class JourneyInterpreter:
    """Walks one journey through its flow. Lives in a module the sandbox passes through, so it is
    not re-imported and recompiled for every journey; it holds no module-level state. What the
    run mutates is one RunState, which its waits, moves and path records receive."""

    def __init__(self) -> None:
        self.run_state = RunState()

    @property
    def state(self) -> JourneyState:
        return self.run_state.state

    # ------------------------------------------------------------ signals

    def hear(self, event: TriggerEvent) -> None:
        signals.hear(self.run_state, event)

    def stop(self, reason: str) -> None:
        signals.stop(self.run_state, reason)

    def move(self, request: MoveRequest) -> None:
        moves.take_move(self.run_state, request)

    # ------------------------------------------------------------ the walk

    async def run(self, journey: JourneyInput) -> JourneyState:
        run = self.run_state
        flow = journey.flow
        run.journey = journey
        run.lean = PATCHES.lean_bookkeeping.new_path()
        resume = run.resume = journey.resume
        state = run.state
        if resume is None:
            # The router starts every journey with StepId set to its first step.
            run.step_attribute = flow.steps[0].id
            declared = {name: d.default for name, d in flow.settings.variables.items()}
            state.variables = declared | dict(journey.variables)
            state.entered_at = workflow.now()
            first = flow.steps[0]
        else:
            run.step_attribute = resume.step_id
            run.visits.update(resume.visits)
            state.path, state.path_dropped = list(resume.path), resume.path_dropped
            state.variables = dict(resume.variables)
            state.entered_at, state.converted_at = resume.entered_at, resume.converted_at
            state.runs = resume.runs
            state.moves = list(resume.moves)
            run.path_written = resume.path_written
            state.current_step = resume.step_id
            first = flow.step(resume.step_id)
        if flow.settings.max_duration is not None and state.entered_at is not None:
            run.deadline = state.entered_at + flow.settings.max_duration
        ref = JourneyRef(
            journey_id=journey.journey_id,
            workspace_id=journey.workspace_id,
            flow_id=flow.id,
            version=journey.version,
            profile_id=journey.profile_id,
        )
        run.ref = ref
        scope = TemplateScope(
            event=journey.event.model_dump(mode="json") if journey.event else {},
            vars=state.variables,
            flow={"id": flow.id, "name": flow.name, "version": journey.version},
        )
        await moves.record_move(ref, resume)
        walk = asyncio.create_task(self._walk(first, ref, scope, flow))
        await self._take_early()
        await workflow.wait_condition(lambda: walk.done() or run.stop is not None)
        status: JourneyStatus = "completed"
        if walk.done():
            try:
                exit_reason = walk.result()
            except ContinueAsNew as handover:
                await write_path(run)  # the entries the new run drops are written first
                moves.continue_as_new(run, journey, handover)
        else:
            assert run.stop is not None
            status, exit_reason = run.stop
            walk.cancel()
            try:
                await walk
            except (asyncio.CancelledError, ContinueAsNew):
                pass
            except ActivityError as error:
                # A local activity cancelled with the walk (the path written before a wait)
                # ends it with this error rather than CancelledError; the stop is what counts.
                if not isinstance(error.cause, CancelledError):
                    raise
            run.end_recorded = False
            if state.path and state.path[-1].left_at is None:
                state.path[-1].left_at = workflow.now()
                state.path[-1].branch = status

        state.status = status
        state.exit_reason = exit_reason
        state.waiting_for = None
        if run.end_recorded:
            return state
        path_start, path = unwritten(run)
        await workflow.execute_local_activity(
            contracts.record_journey_end,
            JourneyEnd(
                journey=ref,
                status=status,
                last_step=state.current_step,
                exit_reason=exit_reason,
                ended_at=workflow.now(),
                path=path,
                path_start=path_start,
            ),
            start_to_close_timeout=timedelta(seconds=30),
        )
        return state

    async def _take_early(self) -> None:
        """The event and move signals of the run's first workflow task, which the SDK handled
        before ``run`` started (when a signal follows a start or a continue-as-new at once).
        Before PATCHES.early_signals they were dropped. They take effect once the walk reached
        its first wait, as a signal that came just after the task would: a wait listening then
        hears the event, a move finds the journey waiting. The patch is asked only when such
        signals came, so other runs record no marker."""
        run = self.run_state
        early, run.early = run.early, []
        if not early or not PATCHES.early_signals.new_path():
            return
        await workflow.wait_condition(lambda: True)  # one turn: the walk runs to its first wait
        for signal in early:
            if isinstance(signal, MoveRequest):
                moves.apply_move(run, signal)
            else:
                signals.take(run, signal)

    async def _walk(self, first: Step, ref: JourneyRef, scope: TemplateScope, flow: FlowDocument) -> str:
        """Runs steps until the journey ends; returns the exit reason."""
        run = self.run_state
        step: Step | None = first
        exit_reason = "completed"
        while step is not None:
            resuming = run.resume is not None and run.resume.step_id == step.id
            entry = run.state.path[-1] if resuming and run.state.path else self._enter(step)
            try:
                result = await self._run_step(step, ref, scope, flow)
            except DeadlineReached:
                entry.left_at, entry.branch = workflow.now(), "max_duration"
                return "max_duration"
            # Only the end follows a step whose activity recorded it (the exit step may run after).
            run.end_recorded = run.end_recorded or result.journey_ended
            entry.left_at = workflow.now()
            entry.branch = result.branch
            entry.error = result.error
            entry.started_journey = result.started_journey
            if isinstance(step, ExitStep):
                exit_reason = "exit_step"
                break
            target = next_step(flow, step, result.branch)
            if isinstance(step, NotifyInternalStep):
                target = _after_notify(flow, step, result.branch, target)
            if target is None and isinstance(step, SplitStep) and result.branch == CONTROL:
                exit_reason = "control_group"
            if isinstance(step, AddToFlowStep) and step.then == "exit" and result.branch == ADDED:
                exit_reason = "added_to_flow"  # moved on to the other flow
            step = flow.step(target) if target is not None else None
        return exit_reason

    def _enter(self, step: Step) -> PathEntry:
        run = self.run_state
        run.visits[step.id] += 1
        run.state.current_step = step.id
        entry = PathEntry(step=step.id, type=step.type, entered_at=workflow.now())
        run.state.path.append(entry)
        if not run.lean or (not isinstance(step, ExitStep) and step.id != run.step_attribute):
            workflow.upsert_search_attributes([STEP_ID.value_set(step.id)])
            run.step_attribute = step.id
        return entry

    def _ending(self, flow: FlowDocument, step: Step, ref: JourneyRef) -> JourneyEnd | None:
        """What the step's activity should record as the journey's end, if only the end follows."""
        if not self.run_state.lean:
            return None
        ending = ending_after(flow, step)
        if ending is None:
            return None
        last_step, reason = ending
        path_start, path = unwritten(self.run_state)
        return JourneyEnd(
            journey=ref,
            status="completed",
            last_step=last_step,
            exit_reason=reason,
            ended_at=workflow.now(),
            path=path,
            path_start=path_start,
        )

    async def _run_step(
        self, step: Step, ref: JourneyRef, scope: TemplateScope, flow: FlowDocument
    ) -> StepResult:
        """One step; returns the branch taken. Exhaustive over ``Step`` (mypy checks assert_never)."""
        visit = self.run_state.visits[step.id]
        match step:
            case PauseStep():
                await waits.pause(self.run_state, step, ref)
                return StepResult(branch=CONTINUE)
            case SendStep():
                return await self._send(step, ref, scope, flow, visit)
            case NotifyInternalStep():
                notify = NotifyRequest(
                    journey=ref,
                    step=step,
                    visit=visit,
                    scope=scope,
                    now=workflow.now(),
                    ends_journey=self._ending(flow, step, ref),
                )
                # Telling the team must not change the person's path: a failure is recorded only.
                return await run_activity(
                    contracts.notify_internal, notify, failed_branch=CONTINUE, options=HEARTBEAT_OPTIONS
                )
            case WebhookStep():
                hook = WebhookRequest(
                    journey=ref,
                    step_id=step.id,
                    visit=visit,
                    url=str(step.url),
                    data=step.data,
                    scope=scope,
                    ends_journey=self._ending(flow, step, ref),
                )
                return await run_activity(
                    contracts.deliver_webhook, hook, failed_branch=CONTINUE, options=HEARTBEAT_OPTIONS
                )
            case SplitStep():
                branch = assign(
                    step.weighted_branches(), flow_id=ref.flow_id, step_id=step.id, profile_id=ref.profile_id
                )
                return StepResult(branch=branch)
            case BranchStep():
                return await first_branch(step, ref)
            case UpdateVariableStep():
                evaluated = await workflow.execute_local_activity(
                    contracts.evaluate_expressions,
                    ExpressionsRequest(journey=ref, expressions=step.set, scope=scope),
                    start_to_close_timeout=timedelta(seconds=30),
                )
                self.run_state.state.variables.update(evaluated.values)
                scope.vars = dict(self.run_state.state.variables)
                errors = "; ".join(f"{name}: {why}" for name, why in evaluated.errors.items())
                return StepResult(branch=CONTINUE, error=errors or None)
            case WaitForDateStep():
                return await waits.wait_for_date(self.run_state, step, ref)
            case UpdateProfileStep() | TagStep() | DoNotContactStep() | StartConversationStep():
                change = ProfileStepRequest(
                    journey=ref,
                    step=step,
                    visit=visit,
                    scope=scope,
                    ends_journey=self._ending(flow, step, ref),
                )
                # A change that fails for good is recorded on the path; the journey goes on.
                return await run_activity(contracts.profile_step, change, failed_branch=CONTINUE)
            case AddToFlowStep():
                add = AddToFlowRequest(
                    journey=ref,
                    step_id=step.id,
                    visit=visit,
                    flow=step.flow,
                    variables=step.variables,
                    participant=None if step.participant == "self" else step.participant,
                    scope=scope,
                )
                return await run_activity(contracts.add_to_flow, add, failed_branch=FAILED)
            case WaitForEventStep():
                return await waits.wait_for_event(self.run_state, step, ref, scope)
            case WaitForChangeStep():
                return await waits.wait_for_change(self.run_state, step)
            case CallApiStep():
                resume = waits.take_resume(self.run_state, step)
                called = await call_api(
                    step, ref, scope, visit, self._sleeper(step), resume.until if resume else None
                )
                self._save_variables(scope, called.variables)
                return StepResult(branch=called.branch, error=called.error)
            case ExportStep():
                export = ExportRequest(
                    journey=ref,
                    step=step,
                    visit=visit,
                    scope=scope,
                    now=workflow.now(),
                    ends_journey=self._ending(flow, step, ref),
                )
                # A local activity: the outbox write is the step's only effect, the destination is
                # not waited for. A failure for good is recorded on the path; the journey goes on.
                try:
                    return await workflow.execute_local_activity(
                        contracts.export_record, export, start_to_close_timeout=timedelta(seconds=30)
                    )
                except ActivityError as error:
                    cause = error.cause if error.cause is not None else error
                    return StepResult(branch=CONTINUE, error=str(cause))
            case ExitStep():
                return StepResult(branch="exit")
            case CustomStep():
                resume = waits.take_resume(self.run_state, step)
                ran = await run_custom_element(
                    step, ref, scope, visit, self._sleeper(step), resume.until if resume else None
                )
                self._save_variables(scope, ran.variables)
                return StepResult(branch=ran.outcome, error=ran.error)
            case _:
                assert_never(step)

    async def _send(
        self, step: SendSteps, ref: JourneyRef, scope: TemplateScope, flow: FlowDocument, visit: int
    ) -> StepResult:
        resume = waits.take_resume(self.run_state, step)
        request = await prepare_send(
            step,
            ref,
            scope,
            flow,
            visit,
            ending=lambda: self._ending(flow, step, ref),
            sleep_until=self._sleeper(step),
            resume_until=resume.until if resume else None,
        )
        self.run_state.state.waiting_for = None
        if isinstance(request, SendInAppRequest):
            return await run_activity(contracts.send_in_app, request, failed_branch="failed")
        # Heartbeats: a send the worker died in is retried in seconds (as webhooks are).
        return await run_activity(
            contracts.send_message, request, failed_branch="failed", options=HEARTBEAT_OPTIONS
        )

    def _save_variables(self, scope: TemplateScope, values: dict[str, Any]) -> None:
        """Variables a step saved (call_api, custom), seen by the templates of the steps after."""
        if values:
            self.run_state.state.variables.update(values)
            scope.vars = dict(self.run_state.state.variables)

    def _sleeper(self, step: Step) -> SleepUntil:
        """The durable timer of ``step`` for helpers that wait (call windows, send windows, rates)."""

        def sleep_until(end: datetime, waiting_for: str) -> Awaitable[None]:
            return waits.sleep_until(self.run_state, step, end, waiting_for)

        return sleep_until


def _after_notify(
    flow: FlowDocument, step: NotifyInternalStep, branch: str, target: str | None
) -> str | None:
    """Where a journey goes after a notify_internal step: ``target`` (its ``next``, as validation
    assumes), or, for a journey replayed without the "notify-next-v1" marker, the step listed after
    it unless the activity failed for good. The marker is asked for only where the two differ, so
    histories that never diverged record no marker."""
    old = target if branch == CONTINUE else following(flow, step.id)
    if old == target or PATCHES.notify_next.new_path():
        return target
    return old
