"""How a journey waits: the signals it hears (events, stops), durable timers cut by the flow's
max_duration, events heard while a wait listens, and the hand-over to a new run
(continue-as-new) when a run grows long.

A base class of the interpreter (workflows/interpreter.py): the same determinism rules apply
(tests/test_workflow_determinism.py scans this module too).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow

from flowline.clock import zone
from flowline.conditions.events import MAX_HEARD
from flowline.durations import format_duration
from flowline.flow.event_waits import completing_event, is_relevant, saved_values
from flowline.flow.graph import CONTINUE
from flowline.flow.steps import PauseStep, Step, WaitForChangeStep, WaitForDateStep, WaitForEventStep
from flowline.flow.steps.waiting import PROFILE_CHANGED, timeout_of
from flowline.flow.timing import date_wait_end, pause_end
from flowline.journey import (
    EVENTS_SINCE,
    PROFILE_ATTRIBUTES,
    PROFILE_TIME_ZONE,
    EventsFound,
    EventsRequest,
    HeardEvent,
    JourneyInput,
    JourneyRef,
    JourneyState,
    JourneyStatus,
    ProfileAttributes,
    ProfileAttributesRequest,
    Resume,
    StepResult,
    TemplateScope,
    TriggerEvent,
)
from workflows.patches import PATCHES
from workflows.path_records import PathRecords


class ContinueAsNew(Exception):
    """Raised inside a wait when the run should hand over to a fresh one (see Resume)."""

    def __init__(self, step_id: str, until: datetime | None, heard: list[HeardEvent]) -> None:
        super().__init__(step_id)
        self.step_id, self.until, self.heard = step_id, until, heard


class DeadlineReached(Exception):
    """The flow's max_duration ended a wait: the journey leaves."""


class Waiting(PathRecords):
    """The interpreter's signals and waits. It sets these attributes in ``run`` and ``__init__``."""

    _state: JourneyState
    _journey: JourneyInput | None
    # Events heard while a wait listens (None: no wait listens now).
    _inbox: list[HeardEvent] | None
    _signals: int
    _resume: Resume | None
    _deadline: datetime | None
    # Set by a stop signal or a stop_when/goal event: (status, reason); the walk is cancelled.
    _stop: tuple[JourneyStatus, str] | None
    _visits: Counter[str]

    def hear(self, event: TriggerEvent) -> None:
        """An event of this journey's profile (the router sends only names the flow listens to)."""
        self._signals += 1
        journey = self._journey
        if journey is None or self._state.status != "running":
            return
        settings = journey.flow.settings
        for match in settings.stop_when:
            if self._stop is None and match.matches(event.name, event.properties):
                self._stop = ("stopped", match.stop_reason(event.name))
        goal = settings.goal
        entered = self._state.entered_at
        if (
            goal is not None
            and self._state.converted_at is None
            and entered is not None
            and workflow.now() <= entered + goal.within
            and goal.matches(event.name, event.properties)
        ):
            self._state.converted_at = workflow.now()
            if goal.exit and self._stop is None:
                self._stop = ("completed", "goal_reached")
        if self._inbox is not None:
            self._inbox.append(HeardEvent(event=event, heard_at=workflow.now()))

    def stop(self, reason: str) -> None:
        if self._stop is None:
            self._stop = ("stopped", reason)

    def _continue_as_new(self, journey: JourneyInput, handover: ContinueAsNew) -> None:
        workflow.continue_as_new(journey.model_copy(update={"resume": self._handover(journey, handover)}))

    def _handover(self, journey: JourneyInput, handover: ContinueAsNew) -> Resume:
        """Where the next run picks up."""
        state = self._state
        keep = journey.limits.path_entries_kept
        dropped = max(0, len(state.path) - keep)
        return Resume(
            step_id=handover.step_id,
            entered_at=state.entered_at or workflow.now(),
            visits=dict(self._visits),
            path=state.path[dropped:],
            path_dropped=state.path_dropped + dropped,
            variables=state.variables,
            converted_at=state.converted_at,
            until=handover.until,
            heard=handover.heard,
            runs=state.runs + 1,
            moves=state.moves,
            path_written=self._path_written,
        )

    def _must_continue_as_new(self) -> bool:
        assert self._journey is not None
        limits = self._journey.limits
        info = workflow.info()
        return (
            self._signals >= limits.signals_per_run
            or info.get_current_history_length() >= limits.history_events
            or info.is_continue_as_new_suggested()
        )

    def _take_resume(self, step: Step) -> Resume | None:
        """The resume point, once, for the step the previous run stopped in."""
        resume = self._resume
        if resume is not None and resume.step_id == step.id:
            self._resume = None
            return resume
        return None

    async def _sleep_until(self, step: Step, end: datetime, waiting_for: str) -> None:
        """A durable timer to ``end`` (none if it has passed), shown as what the journey waits for.
        The flow's max_duration cuts it short (the journey leaves); a long history hands over to a
        new run that sleeps on to the same ``end``."""
        self._state.waiting_for = waiting_for
        until = self._cut(end)
        await self._write_path_before_wait(until)
        if until > workflow.now():
            try:
                await workflow.wait_condition(self._must_continue_as_new, timeout=until - workflow.now())
            except TimeoutError:
                pass
            else:
                raise ContinueAsNew(step.id, end, [])
        if until < end:
            raise DeadlineReached
        self._state.waiting_for = None

    def _cut(self, end: datetime) -> datetime:
        return min(end, self._deadline) if self._deadline is not None else end

    async def _listen(
        self, step: Step, end: datetime, heard: dict[str, HeardEvent], done: Callable[[], str | None]
    ) -> str:
        """Waits, taking events into ``heard`` (by id: a re-sent event counts once), until ``done``
        names a branch or ``end`` passes ("timeout"; max_duration ends the journey instead)."""
        until = self._cut(end)
        inbox = self._inbox = []
        written = False
        try:
            while True:
                if self._stop is not None and PATCHES.stop_mid_listen.new_path():
                    # The stop's signal also woke this wait, and Python 3.11's asyncio.wait_for drops
                    # a task's cancellation when the future it awaits is done in the same turn: the
                    # run's cancellation of this walk may have been lost (PATCHES.stop_mid_listen).
                    raise asyncio.CancelledError
                for item in inbox:
                    heard.setdefault(item.event.id, item)
                inbox.clear()
                if len(heard) > MAX_HEARD:
                    newest = sorted(heard.values(), key=lambda h: h.heard_at)[-MAX_HEARD:]
                    heard.clear()
                    heard.update((h.event.id, h) for h in newest)
                branch = done()
                if branch is not None:
                    return branch
                if workflow.now() >= until:
                    if until < end:
                        raise DeadlineReached
                    return "timeout"
                if self._must_continue_as_new():
                    raise ContinueAsNew(step.id, end, list(heard.values()))
                if not written:  # events heard meanwhile wait in the inbox
                    written = True
                    await self._write_path_before_wait(until)
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: bool(inbox) or self._must_continue_as_new(),
                        timeout=until - workflow.now(),
                    )
        finally:
            self._inbox = None

    async def _wait_for_event(
        self, step: WaitForEventStep, ref: JourneyRef, scope: TemplateScope
    ) -> StepResult:
        resume = self._take_resume(step)
        heard: dict[str, HeardEvent] = {}
        if resume is not None and resume.until is not None:
            end = resume.until
            heard.update((h.event.id, h) for h in resume.heard)
        else:
            end = workflow.now() + timeout_of(step.timeout)
        names = sorted({c.event for c in step.conditions})
        self._state.waiting_for = f"event: {', '.join(names)} (until {end.isoformat()})"
        if resume is None and step.include_since_entry and self._state.entered_at is not None:
            # Events from before this step: the store has them (the journey may not have listened).
            found: EventsFound = await workflow.execute_local_activity(
                EVENTS_SINCE,
                EventsRequest(journey=ref, names=names, since=self._state.entered_at),
                result_type=EventsFound,
                start_to_close_timeout=timedelta(seconds=30),
            )
            for event in found.events:
                heard.setdefault(
                    event.id, HeardEvent(event=event, heard_at=min(event.timestamp, workflow.now()))
                )
        completed: list[TriggerEvent] = []

        def done() -> str | None:
            relevant = [h for h in heard.values() if is_relevant(step, h.event)]
            event = completing_event(step, relevant, workflow.now())
            if event is None:
                return None
            completed.append(event)
            return "happened"

        branch = await self._listen(step, end, heard, done)
        self._state.waiting_for = None
        if completed and step.save:
            self._state.variables.update(saved_values(step.save, completed[0]))
            scope.vars = dict(self._state.variables)
        return StepResult(branch=branch)

    async def _wait_for_change(self, step: WaitForChangeStep) -> StepResult:
        resume = self._take_resume(step)
        end = resume.until if resume and resume.until else workflow.now() + timeout_of(step.timeout)
        self._state.waiting_for = f"change: {step.attribute} (until {end.isoformat()})"
        heard: dict[str, HeardEvent] = {}

        def done() -> str | None:
            for item in heard.values():
                if item.event.name == PROFILE_CHANGED and step.is_met_by(item.event.properties):
                    return "changed"
            return None

        branch = await self._listen(step, end, heard, done)
        self._state.waiting_for = None
        return StepResult(branch=branch)

    async def _pause(self, step: PauseStep, ref: JourneyRef) -> None:
        resume = self._take_resume(step)
        if resume is not None and resume.until is not None:
            end = resume.until
        elif isinstance(step.for_, timedelta) and step.until_time is None:
            end = workflow.now() + step.for_
        else:
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
        if isinstance(step.for_, timedelta) and step.until_time is None:
            waiting_for = f"pause: {format_duration(step.for_)}"
        else:
            waiting_for = f"pause until {end.isoformat()}"
        await self._sleep_until(step, end, waiting_for)

    async def _wait_for_date(self, step: WaitForDateStep, ref: JourneyRef) -> StepResult:
        resume = self._take_resume(step)
        if resume is not None and resume.until is not None:
            await self._sleep_until(step, resume.until, f"date: {step.attribute}")
            return StepResult(branch=CONTINUE)
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
            return StepResult(branch=CONTINUE, error=f"profile attribute {step.attribute!r} holds no date")
        await self._sleep_until(step, end, f"date: {step.attribute} ({end.isoformat()})")
        return StepResult(branch=CONTINUE)
