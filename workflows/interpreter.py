"""The journey interpreter: one profile walking through one flow version, step by step.

Deterministic: time comes from ``workflow.now()``, waiting from durable timers, every side
effect from an activity. Any change here that would make a recorded history produce other
commands must sit behind a patch (workflows/patches.py, docs/patches.md; tests/test_replay.py
replays every recorded history on each run). workflows/journey.py is the thin workflow definition around it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import Any, assert_never

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from flowline.flow.document import FlowDocument
from flowline.flow.experiments import assign
from flowline.flow.graph import ADDED, CONTINUE, CONTROL, ELSE, FAILED, ending_after, next_step
from flowline.flow.steps import (
    AddToFlowStep,
    BranchStep,
    CallApiStep,
    DoNotContactStep,
    ExitStep,
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
    ADD_TO_FLOW,
    DELIVER_WEBHOOK,
    EVALUATE_CONDITIONS,
    EVALUATE_EXPRESSIONS,
    NOTIFY_INTERNAL,
    PROFILE_STEP,
    RECORD_JOURNEY_END,
    SEND_IN_APP,
    AddToFlowRequest,
    ConditionsRequest,
    ConditionsResult,
    ExpressionsRequest,
    ExpressionsResult,
    HeardEvent,
    JourneyEnd,
    JourneyInput,
    JourneyRef,
    JourneyState,
    JourneyStatus,
    NamedCondition,
    NotifyRequest,
    PathEntry,
    ProfileStepRequest,
    Resume,
    SendInAppRequest,
    SendRequest,
    StepResult,
    TemplateScope,
    WebhookRequest,
)
from workflows.calls import SleepUntil, call_api
from workflows.moves import Moving
from workflows.patches import PATCHES
from workflows.search_attributes import STEP_ID
from workflows.sends import prepare_send
from workflows.waits import ContinueAsNew, DeadlineReached

# Sends are retried for a day: a provider outage delays a message, it does not drop it.
SEND_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5))

SEND_OPTIONS = {
    "start_to_close_timeout": timedelta(seconds=60),
    "schedule_to_close_timeout": timedelta(days=1),
    "retry_policy": SEND_RETRY,
}
# Webhook and message activities heartbeat while they run (activities/heartbeat.py): when a worker dies
# mid-send, the retry starts once the beats stop, not after the 60 s start-to-close timeout.
# Timeouts are not part of the commands replay compares, so no patch is needed.
HEARTBEAT_OPTIONS = {**SEND_OPTIONS, "heartbeat_timeout": timedelta(seconds=10)}


class JourneyInterpreter(Moving):
    """Walks one journey through its flow. Lives in a module the sandbox passes through, so it is
    not re-imported and recompiled for every journey; it holds no module-level state."""

    def __init__(self) -> None:
        self._state = JourneyState()
        self._visits: Counter[str] = Counter()
        self._lean = False
        self._step_attribute: str | None = None
        self._end_recorded = False
        self._journey: JourneyInput | None = None
        # Set by a stop signal or a stop_when/goal event: (status, reason); the walk is cancelled.
        self._stop: tuple[JourneyStatus, str] | None = None
        # Events heard while a wait listens (None: no wait listens now).
        self._inbox: list[HeardEvent] | None = None
        self._signals = 0
        self._resume: Resume | None = None
        self._deadline: datetime | None = None
        self._move = None
        self._ref: JourneyRef | None = None
        self._path_written = 0

    @property
    def state(self) -> JourneyState:
        return self._state

    # ------------------------------------------------------------ the walk

    async def run(self, journey: JourneyInput) -> JourneyState:
        flow = journey.flow
        self._journey = journey
        self._lean = PATCHES.lean_bookkeeping.new_path()
        resume = self._resume = journey.resume
        state = self._state
        if resume is None:
            # The router starts every journey with StepId set to its first step.
            self._step_attribute = flow.steps[0].id
            declared = {name: d.default for name, d in flow.settings.variables.items()}
            state.variables = declared | dict(journey.variables)
            state.entered_at = workflow.now()
            first = flow.steps[0]
        else:
            self._step_attribute = resume.step_id
            self._visits.update(resume.visits)
            state.path, state.path_dropped = list(resume.path), resume.path_dropped
            state.variables = dict(resume.variables)
            state.entered_at, state.converted_at = resume.entered_at, resume.converted_at
            state.runs = resume.runs
            state.moves = list(resume.moves)
            self._path_written = resume.path_written
            state.current_step = resume.step_id
            first = flow.step(resume.step_id)
        if flow.settings.max_duration is not None and state.entered_at is not None:
            self._deadline = state.entered_at + flow.settings.max_duration
        ref = JourneyRef(
            journey_id=journey.journey_id,
            workspace_id=journey.workspace_id,
            flow_id=flow.id,
            version=journey.version,
            profile_id=journey.profile_id,
        )
        self._ref = ref
        scope = TemplateScope(
            event=journey.event.model_dump(mode="json") if journey.event else {},
            vars=state.variables,
            flow={"id": flow.id, "name": flow.name, "version": journey.version},
        )
        await self._record_move(ref, resume)
        walk = asyncio.create_task(self._walk(first, ref, scope, flow))
        await workflow.wait_condition(lambda: walk.done() or self._stop is not None)
        status: JourneyStatus = "completed"
        if walk.done():
            try:
                exit_reason = walk.result()
            except ContinueAsNew as handover:
                await self._write_path()  # the entries the new run drops are written first
                self._continue_as_new(journey, handover)
        else:
            assert self._stop is not None
            status, exit_reason = self._stop
            walk.cancel()
            try:
                await walk
            except asyncio.CancelledError:
                pass
            except ContinueAsNew:
                pass
            self._end_recorded = False
            if state.path and state.path[-1].left_at is None:
                state.path[-1].left_at = workflow.now()
                state.path[-1].branch = status

        state.status = status
        state.exit_reason = exit_reason
        state.waiting_for = None
        if self._end_recorded:
            return state
        path_start, path = self._unwritten()
        await workflow.execute_local_activity(
            RECORD_JOURNEY_END,
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

    async def _walk(self, first: Step, ref: JourneyRef, scope: TemplateScope, flow: FlowDocument) -> str:
        """Runs steps until the journey ends; returns the exit reason."""
        step: Step | None = first
        exit_reason = "completed"
        while step is not None:
            resuming = self._resume is not None and self._resume.step_id == step.id
            entry = self._state.path[-1] if resuming and self._state.path else self._enter(step)
            try:
                result = await self._run_step(step, ref, scope, flow)
            except DeadlineReached:
                entry.left_at, entry.branch = workflow.now(), "max_duration"
                return "max_duration"
            # Only the end follows a step whose activity recorded it (the exit step may run after).
            self._end_recorded = self._end_recorded or result.journey_ended
            entry.left_at = workflow.now()
            entry.branch = result.branch
            entry.error = result.error
            entry.started_journey = result.started_journey
            if isinstance(step, ExitStep):
                exit_reason = "exit_step"
                break
            target = next_step(flow, step, result.branch)
            if target is None and isinstance(step, SplitStep) and result.branch == CONTROL:
                exit_reason = "control_group"
            if isinstance(step, AddToFlowStep) and step.then == "exit" and result.branch == ADDED:
                exit_reason = "added_to_flow"  # moved on to the other flow
            step = flow.step(target) if target is not None else None
        return exit_reason

    def _enter(self, step: Step) -> PathEntry:
        self._visits[step.id] += 1
        self._state.current_step = step.id
        entry = PathEntry(step=step.id, type=step.type, entered_at=workflow.now())
        self._state.path.append(entry)
        if not self._lean or (not isinstance(step, ExitStep) and step.id != self._step_attribute):
            workflow.upsert_search_attributes([STEP_ID.value_set(step.id)])
            self._step_attribute = step.id
        return entry

    def _ending(self, flow: FlowDocument, step: Step, ref: JourneyRef) -> JourneyEnd | None:
        """What the step's activity should record as the journey's end, if only the end follows."""
        if not self._lean:
            return None
        ending = ending_after(flow, step)
        if ending is None:
            return None
        last_step, reason = ending
        path_start, path = self._unwritten()
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
        iteration = self._visits[step.id]
        match step:
            case PauseStep():
                await self._pause(step, ref)
                return StepResult(branch=CONTINUE)
            case SendStep():
                return await self._send(step, ref, scope, flow, iteration)
            case NotifyInternalStep():
                notify = NotifyRequest(
                    journey=ref,
                    step=step,
                    iteration=iteration,
                    scope=scope,
                    now=workflow.now(),
                    ends_journey=self._ending(flow, step, ref),
                )
                # Telling the team must not change the person's path: a failure is recorded only.
                return await self._activity(
                    NOTIFY_INTERNAL, notify, failed_branch=CONTINUE, options=HEARTBEAT_OPTIONS
                )
            case WebhookStep():
                hook = WebhookRequest(
                    journey=ref,
                    step_id=step.id,
                    iteration=iteration,
                    url=str(step.url),
                    data=step.data,
                    scope=scope,
                    ends_journey=self._ending(flow, step, ref),
                )
                return await self._activity(
                    DELIVER_WEBHOOK, hook, failed_branch=CONTINUE, options=HEARTBEAT_OPTIONS
                )
            case SplitStep():
                branch = assign(
                    step.weighted_branches(), flow_id=ref.flow_id, step_id=step.id, profile_id=ref.profile_id
                )
                return StepResult(branch=branch)
            case BranchStep():
                return await self._branch(step, ref)
            case UpdateVariableStep():
                evaluated: ExpressionsResult = await workflow.execute_local_activity(
                    EVALUATE_EXPRESSIONS,
                    ExpressionsRequest(journey=ref, expressions=step.set, scope=scope),
                    result_type=ExpressionsResult,
                    start_to_close_timeout=timedelta(seconds=30),
                )
                self._state.variables.update(evaluated.values)
                scope.vars = dict(self._state.variables)
                errors = "; ".join(f"{name}: {why}" for name, why in evaluated.errors.items())
                return StepResult(branch=CONTINUE, error=errors or None)
            case WaitForDateStep():
                return await self._wait_for_date(step, ref)
            case UpdateProfileStep() | TagStep() | DoNotContactStep() | StartConversationStep():
                change = ProfileStepRequest(
                    journey=ref,
                    step=step,
                    iteration=iteration,
                    scope=scope,
                    ends_journey=self._ending(flow, step, ref),
                )
                # A change that fails for good is recorded on the path; the journey goes on.
                return await self._activity(PROFILE_STEP, change, failed_branch=CONTINUE)
            case AddToFlowStep():
                add = AddToFlowRequest(
                    journey=ref,
                    step_id=step.id,
                    iteration=iteration,
                    flow=step.flow,
                    variables=step.variables,
                    participant=None if step.participant == "self" else step.participant,
                    scope=scope,
                )
                return await self._activity(ADD_TO_FLOW, add, failed_branch=FAILED)
            case WaitForEventStep():
                return await self._wait_for_event(step, ref, scope)
            case WaitForChangeStep():
                return await self._wait_for_change(step)
            case CallApiStep():
                resume = self._take_resume(step)
                called = await call_api(
                    step, ref, scope, iteration, self._sleeper(step), resume.until if resume else None
                )
                if called.variables:
                    self._state.variables.update(called.variables)
                    scope.vars = dict(self._state.variables)
                return StepResult(branch=called.branch, error=called.error)
            case ExitStep():
                return StepResult(branch="exit")
            case _:
                assert_never(step)

    async def _send(
        self, step: SendSteps, ref: JourneyRef, scope: TemplateScope, flow: FlowDocument, iteration: int
    ) -> StepResult:
        resume = self._take_resume(step)
        name, request = await prepare_send(
            step,
            ref,
            scope,
            flow,
            iteration,
            ending=lambda: self._ending(flow, step, ref),
            sleep_until=self._sleeper(step),
            resume_until=resume.until if resume else None,
        )
        self._state.waiting_for = None
        # Heartbeats: a send the worker died in is retried in seconds (as webhooks are).
        options = SEND_OPTIONS if name == SEND_IN_APP else HEARTBEAT_OPTIONS
        return await self._activity(name, request, failed_branch="failed", options=options)

    def _sleeper(self, step: Step) -> SleepUntil:
        """The durable timer of ``step`` for helpers that wait (call windows, send windows, rates)."""

        def sleep_until(end: datetime, waiting_for: str) -> Awaitable[None]:
            return self._sleep_until(step, end, waiting_for)

        return sleep_until

    async def _branch(self, step: BranchStep, ref: JourneyRef) -> StepResult:
        """The first branch whose condition holds now; a failed evaluation takes "else"."""
        request = ConditionsRequest(
            journey=ref,
            conditions=[NamedCondition(name=b.name, when=b.when) for b in step.branches],
            now=workflow.now(),
        )
        try:
            chosen: ConditionsResult = await workflow.execute_local_activity(
                EVALUATE_CONDITIONS,
                request,
                result_type=ConditionsResult,
                start_to_close_timeout=timedelta(seconds=30),
            )
        except ActivityError as error:
            cause = error.cause if error.cause is not None else error
            return StepResult(branch=ELSE, error=str(cause))
        return StepResult(branch=chosen.branch, error=chosen.error)

    async def _activity(
        self,
        name: str,
        request: SendInAppRequest
        | SendRequest
        | NotifyRequest
        | WebhookRequest
        | AddToFlowRequest
        | ProfileStepRequest,
        *,
        failed_branch: str,
        options: dict[str, Any] = SEND_OPTIONS,
    ) -> StepResult:
        """Run a side effect; when it fails for good the journey goes on down ``failed_branch``."""
        try:
            result: StepResult = await workflow.execute_activity(
                name, request, result_type=StepResult, **options
            )
            return result
        except ActivityError as error:
            cause = error.cause if error.cause is not None else error
            return StepResult(branch=failed_branch, error=str(cause))
