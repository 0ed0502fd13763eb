"""What the journey's event and stop signals do to a run (the move signal: moves.py)."""

from __future__ import annotations

from temporalio import workflow

from flowline.journey import HeardEvent, TriggerEvent
from workflows.interpreter.run_state import RunState


def hear(run: RunState, event: TriggerEvent) -> None:
    """An event of this journey's profile (the router sends only names the flow listens to)."""
    run.signals += 1
    if run.journey is None:
        run.early.append(event)  # before the run started: the run takes it (take_early)
        return
    take(run, event)


def take(run: RunState, event: TriggerEvent) -> None:
    """What an event does to the running journey: a stop, a conversion, an event a wait hears."""
    journey = run.journey
    if journey is None or run.state.status != "running":
        return
    settings = journey.flow.settings
    for match in settings.stop_when:
        if run.stop is None and match.matches(event.name, event.properties):
            run.stop = ("stopped", match.stop_reason(event.name))
    goal = settings.goal
    entered = run.state.entered_at
    if (
        goal is not None
        and run.state.converted_at is None
        and entered is not None
        and workflow.now() <= entered + goal.within
        and goal.matches(event.name, event.properties)
    ):
        run.state.converted_at = workflow.now()
        if goal.exit and run.stop is None:
            run.stop = ("completed", "goal_reached")
    if run.inbox is not None:
        run.inbox.append(HeardEvent(event=event, heard_at=workflow.now()))


def stop(run: RunState, reason: str) -> None:
    if run.stop is None:
        run.stop = ("stopped", reason)
