"""How a journey waits: durable timers cut by the flow's max_duration, events heard while a wait
listens, and the hand-over to a new run (continue-as-new) when a run grows long or a move is due.

Each wait receives the run's state (run_state.py); workflow code, deterministic like the rest of
the interpreter (tests/test_workflow_determinism.py).
"""

from __future__ import annotations

import asyncio
import contextlib
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
    EventsRequest,
    HeardEvent,
    JourneyRef,
    ProfileAttributesRequest,
    Resume,
    StepResult,
    TemplateScope,
    TriggerEvent,
    contracts,
)
from workflows.interpreter.handover import ContinueAsNew
from workflows.interpreter.moves import move_due
from workflows.interpreter.path_records import write_path_before_wait
from workflows.interpreter.run_state import RunState
from workflows.patches import PATCHES


class DeadlineReached(Exception):
    """The flow's max_duration ended a wait: the journey leaves."""


def must_continue_as_new(run: RunState) -> bool:
    """A move is due, or the run grew long: the wait hands over to a new run."""
    return move_due(run) or _run_is_long(run)


def _run_is_long(run: RunState) -> bool:
    assert run.journey is not None
    limits = run.journey.limits
    info = workflow.info()
    return (
        run.signals >= limits.signals_per_run
        or info.get_current_history_length() >= limits.history_events
        or info.is_continue_as_new_suggested()
    )


def take_resume(run: RunState, step: Step) -> Resume | None:
    """The resume point, once, for the step the previous run stopped in."""
    resume = run.resume
    if resume is not None and resume.step_id == step.id:
        run.resume = None
        return resume
    return None


async def sleep_until(run: RunState, step: Step, end: datetime, waiting_for: str) -> None:
    """A durable timer to ``end`` (none if it has passed), shown as what the journey waits for.
    The flow's max_duration cuts it short (the journey leaves); a long history hands over to a
    new run that sleeps on to the same ``end``."""
    run.state.waiting_for = waiting_for
    until = cut(run, end)
    await write_path_before_wait(run, until)
    if until > workflow.now():
        try:
            await workflow.wait_condition(lambda: must_continue_as_new(run), timeout=until - workflow.now())
        except TimeoutError:
            pass
        else:
            raise ContinueAsNew(step.id, end, [])
    if until < end:
        raise DeadlineReached
    run.state.waiting_for = None


def cut(run: RunState, end: datetime) -> datetime:
    return min(end, run.deadline) if run.deadline is not None else end


async def listen(
    run: RunState, step: Step, end: datetime, heard: dict[str, HeardEvent], done: Callable[[], str | None]
) -> str:
    """Waits, taking events into ``heard`` (by id: a re-sent event counts once), until ``done``
    names a branch or ``end`` passes ("timeout"; max_duration ends the journey instead)."""
    until = cut(run, end)
    inbox = run.inbox = []
    written = False
    try:
        while True:
            if run.stop is not None and PATCHES.stop_mid_listen.new_path():
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
            if must_continue_as_new(run):
                raise ContinueAsNew(step.id, end, list(heard.values()))
            if not written:  # events heard meanwhile wait in the inbox
                written = True
                await write_path_before_wait(run, until)
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: bool(inbox) or must_continue_as_new(run),
                    timeout=until - workflow.now(),
                )
    finally:
        run.inbox = None


async def wait_for_event(
    run: RunState, step: WaitForEventStep, ref: JourneyRef, scope: TemplateScope
) -> StepResult:
    resume = take_resume(run, step)
    heard: dict[str, HeardEvent] = {}
    if resume is not None and resume.until is not None:
        end = resume.until
        heard.update((h.event.id, h) for h in resume.heard)
    else:
        end = workflow.now() + timeout_of(step.timeout)
    names = sorted({c.event for c in step.conditions})
    run.state.waiting_for = f"event: {', '.join(names)} (until {end.isoformat()})"
    if resume is None and step.include_since_entry and run.state.entered_at is not None:
        # Events from before this step: the store has them (the journey may not have listened).
        found = await workflow.execute_local_activity(
            contracts.events_since,
            EventsRequest(journey=ref, names=names, since=run.state.entered_at),
            start_to_close_timeout=timedelta(seconds=30),
        )
        for event in found.events:
            heard.setdefault(event.id, HeardEvent(event=event, heard_at=min(event.timestamp, workflow.now())))
    completed: list[TriggerEvent] = []

    def done() -> str | None:
        relevant = [h for h in heard.values() if is_relevant(step, h.event)]
        event = completing_event(step, relevant, workflow.now())
        if event is None:
            return None
        completed.append(event)
        return "happened"

    branch = await listen(run, step, end, heard, done)
    run.state.waiting_for = None
    if completed and step.save:
        run.state.variables.update(saved_values(step.save, completed[0]))
        scope.vars = dict(run.state.variables)
    return StepResult(branch=branch)


async def wait_for_change(run: RunState, step: WaitForChangeStep) -> StepResult:
    resume = take_resume(run, step)
    end = resume.until if resume and resume.until else workflow.now() + timeout_of(step.timeout)
    run.state.waiting_for = f"change: {step.attribute} (until {end.isoformat()})"
    heard: dict[str, HeardEvent] = {}

    def done() -> str | None:
        for item in heard.values():
            if item.event.name == PROFILE_CHANGED and step.is_met_by(item.event.properties):
                return "changed"
        return None

    branch = await listen(run, step, end, heard, done)
    run.state.waiting_for = None
    return StepResult(branch=branch)


async def pause(run: RunState, step: PauseStep, ref: JourneyRef) -> None:
    resume = take_resume(run, step)
    if resume is not None and resume.until is not None:
        end = resume.until
    elif isinstance(step.for_, timedelta) and step.until_time is None:
        end = workflow.now() + step.for_
    else:
        # Pauses that read a wall clock need the person's zone (read each time: it may change).
        zone_name = step.timezone
        if zone_name is None and step.needs_zone:
            zone_name = await workflow.execute_local_activity(
                contracts.profile_time_zone,
                ref,
                start_to_close_timeout=timedelta(seconds=30),
            )
        end = pause_end(step, workflow.now(), zone(zone_name))
    if isinstance(step.for_, timedelta) and step.until_time is None:
        waiting_for = f"pause: {format_duration(step.for_)}"
    else:
        waiting_for = f"pause until {end.isoformat()}"
    await sleep_until(run, step, end, waiting_for)


async def wait_for_date(run: RunState, step: WaitForDateStep, ref: JourneyRef) -> StepResult:
    resume = take_resume(run, step)
    if resume is not None and resume.until is not None:
        await sleep_until(run, step, resume.until, f"date: {step.attribute}")
        return StepResult(branch=CONTINUE)
    found = await workflow.execute_local_activity(
        contracts.profile_attributes,
        ProfileAttributesRequest(journey=ref, names=[step.attribute, "timezone"]),
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
    await sleep_until(run, step, end, f"date: {step.attribute} ({end.isoformat()})")
    return StepResult(branch=CONTINUE)
