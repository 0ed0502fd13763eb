"""The journey interpreter: one profile walking through one flow version, step by step.

Deterministic: time comes from ``workflow.now()``, waiting from durable timers, every side
effect from an activity. Any change here that would make a recorded history produce other
commands must sit behind ``workflow.patched`` (tests/test_replay.py replays every recorded
history on each run). workflows/journey.py is the thin workflow definition around it.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import assert_never

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from flowline.clock import zone
from flowline.durations import format_duration
from flowline.flow.experiments import assign
from flowline.flow.graph import CONTINUE, CONTROL, ending_after, next_step
from flowline.flow.model import (
    DoNotContactStep,
    ExitStep,
    FlowDocument,
    PauseStep,
    SendStep,
    SplitStep,
    StartConversationStep,
    Step,
    TagStep,
    UpdateProfileStep,
    UpdateVariableStep,
    WaitForDateStep,
    WebhookStep,
)
from flowline.flow.timing import date_wait_end, pause_end
from flowline.journey import (
    DELIVER_WEBHOOK,
    EVALUATE_EXPRESSIONS,
    PROFILE_ATTRIBUTES,
    PROFILE_STEP,
    PROFILE_TIME_ZONE,
    RECORD_JOURNEY_END,
    SEND_IN_APP,
    ExpressionsRequest,
    ExpressionsResult,
    JourneyEnd,
    JourneyInput,
    JourneyRef,
    JourneyState,
    PathEntry,
    ProfileAttributes,
    ProfileAttributesRequest,
    ProfileStepRequest,
    SendInAppRequest,
    StepResult,
    TemplateScope,
    WebhookRequest,
)
from workflows.search_attributes import STEP_ID

# Sends are retried for a day: a provider outage delays a message, it does not drop it.
SEND_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5))
# Journeys that started before this patch record their end with a local activity and upsert the
# StepId search attribute on every step; journeys after it let the last activity record the end
# when only the exit follows it, and skip upserts that change nothing (the exit step, or the
# step already shown). Fewer commands and one workflow activation less per journey.
LEAN_BOOKKEEPING = "lean-bookkeeping-v1"

SEND_OPTIONS = {
    "start_to_close_timeout": timedelta(seconds=60),
    "schedule_to_close_timeout": timedelta(days=1),
    "retry_policy": SEND_RETRY,
}


class JourneyInterpreter:
    """Walks one journey through its flow. Lives in a module the sandbox passes through, so it is
    not re-imported and recompiled for every journey; it holds no module-level state."""

    def __init__(self) -> None:
        self._state = JourneyState()
        self._visits: Counter[str] = Counter()
        self._lean = False
        self._step_attribute: str | None = None
        self._end_recorded = False

    @property
    def state(self) -> JourneyState:
        return self._state

    async def run(self, journey: JourneyInput) -> JourneyState:
        flow = journey.flow
        self._lean = workflow.patched(LEAN_BOOKKEEPING)
        # The router starts every journey with StepId set to its first step.
        self._step_attribute = flow.steps[0].id
        self._state.variables = dict(journey.variables)
        ref = JourneyRef(
            journey_id=journey.journey_id,
            workspace_id=journey.workspace_id,
            flow_id=flow.id,
            version=journey.version,
            profile_id=journey.profile_id,
        )
        scope = TemplateScope(
            event=journey.event.model_dump(mode="json") if journey.event else {},
            vars=self._state.variables,
            flow={"id": flow.id, "name": flow.name, "version": journey.version},
        )
        step: Step | None = flow.steps[0]
        exit_reason = "completed"
        while step is not None:
            entry = self._enter(step)
            result = await self._run_step(step, ref, scope, flow)
            # Only the end follows a step whose activity recorded it (the exit step may run after).
            self._end_recorded = self._end_recorded or result.journey_ended
            entry.left_at = workflow.now()
            entry.branch = result.branch
            entry.error = result.error
            if isinstance(step, ExitStep):
                exit_reason = "exit_step"
                break
            target = next_step(flow, step, result.branch)
            if target is None and isinstance(step, SplitStep) and result.branch == CONTROL:
                exit_reason = "control_group"
            step = flow.step(target) if target is not None else None

        self._state.status = "completed"
        self._state.exit_reason = exit_reason
        self._state.waiting_for = None
        if self._end_recorded:
            return self._state
        await workflow.execute_local_activity(
            RECORD_JOURNEY_END,
            JourneyEnd(
                journey=ref,
                status="completed",
                last_step=self._state.current_step,
                exit_reason=exit_reason,
                ended_at=workflow.now(),
            ),
            start_to_close_timeout=timedelta(seconds=30),
        )
        return self._state

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
        return JourneyEnd(
            journey=ref, status="completed", last_step=last_step, exit_reason=reason, ended_at=workflow.now()
        )

    async def _run_step(
        self, step: Step, ref: JourneyRef, scope: TemplateScope, flow: FlowDocument
    ) -> StepResult:
        """One step; returns the branch taken. Exhaustive over ``Step`` (mypy checks assert_never)."""
        iteration = self._visits[step.id]
        match step:
            case PauseStep(for_=timedelta() as duration, until_time=None):
                self._state.waiting_for = f"pause: {format_duration(duration)}"
                await workflow.sleep(duration)
                self._state.waiting_for = None
                return StepResult(branch=CONTINUE)
            case PauseStep():
                # Pauses that read a wall clock need the person's zone (read each time: it may change).
                zone_name = step.timezone
                if zone_name is None and step.needs_zone:
                    zone_name = await workflow.execute_local_activity(
                        PROFILE_TIME_ZONE,
                        ref,
                        result_type=str,
                        start_to_close_timeout=timedelta(seconds=30),
                    )
                end = pause_end(step, workflow.now(), zone(zone_name))
                await self._sleep_until(end, f"pause until {end.isoformat()}")
                return StepResult(branch=CONTINUE)
            case SendStep():
                request = SendInAppRequest(
                    journey=ref,
                    step_id=step.id,
                    iteration=iteration,
                    title=step.content.title,
                    body=step.content.body,
                    data=step.content.data,
                    scope=scope,
                    ends_journey=self._ending(flow, step, ref),
                )
                return await self._activity(SEND_IN_APP, request, failed_branch="failed")
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
                return await self._activity(DELIVER_WEBHOOK, hook, failed_branch=CONTINUE)
            case SplitStep():
                branch = assign(
                    step.weighted_branches(), flow_id=ref.flow_id, step_id=step.id, profile_id=ref.profile_id
                )
                return StepResult(branch=branch)
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
                found: ProfileAttributes = await workflow.execute_local_activity(
                    PROFILE_ATTRIBUTES,
                    ProfileAttributesRequest(journey=ref, names=[step.attribute, "timezone"]),
                    result_type=ProfileAttributes,
                    start_to_close_timeout=timedelta(seconds=30),
                )
                raw, profile_zone = found.values.get(step.attribute), found.values.get("timezone")
                try:
                    if not isinstance(raw, str):
                        raise ValueError("no date")
                    zone_name = profile_zone if isinstance(profile_zone, str) else None
                    end = date_wait_end(step, raw, workflow.now(), zone(step.timezone, zone_name))
                except ValueError:
                    return StepResult(
                        branch=CONTINUE, error=f"profile attribute {step.attribute!r} holds no date"
                    )
                await self._sleep_until(end, f"date: {step.attribute} ({end.isoformat()})")
                return StepResult(branch=CONTINUE)
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
            case ExitStep():
                return StepResult(branch="exit")
            case _:
                assert_never(step)

    async def _sleep_until(self, end: datetime, waiting_for: str) -> None:
        """A durable timer to ``end`` (none if it has passed), shown as what the journey waits for."""
        self._state.waiting_for = waiting_for
        if end > workflow.now():
            await workflow.sleep(end - workflow.now())
        self._state.waiting_for = None

    async def _activity(
        self,
        name: str,
        request: SendInAppRequest | WebhookRequest | ProfileStepRequest,
        *,
        failed_branch: str,
    ) -> StepResult:
        """Run a side effect; when it fails for good the journey goes on down ``failed_branch``."""
        try:
            result: StepResult = await workflow.execute_activity(  # type: ignore[call-overload]
                name, request, result_type=StepResult, **SEND_OPTIONS
            )
            return result
        except ActivityError as error:
            cause = error.cause if error.cause is not None else error
            return StepResult(branch=failed_branch, error=str(cause))
