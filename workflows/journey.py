"""The journey workflow: one profile in one flow version (see workflows/interpreter.py).

Kept this small on purpose: the sandbox re-imports this module for every new journey, while
the interpreter it wraps is passed through and loaded once per worker.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from flowline.journey import (
        EVENT_SIGNAL,
        MOVE_SIGNAL,
        STOP_SIGNAL,
        JourneyInput,
        JourneyState,
        MoveRequest,
        StopRequest,
        TriggerEvent,
    )
    from workflows.interpreter import JourneyInterpreter


@workflow.defn(name="Journey")
class JourneyWorkflow:
    def __init__(self) -> None:
        self._journey = JourneyInterpreter()

    @workflow.query(name="state")
    def state(self) -> JourneyState:
        return self._journey.state

    @workflow.signal(name=EVENT_SIGNAL)
    def event(self, event: TriggerEvent) -> None:
        self._journey.hear(event)

    @workflow.signal(name=STOP_SIGNAL)
    def stop(self, request: StopRequest) -> None:
        self._journey.stop(request.reason)

    @workflow.signal(name=MOVE_SIGNAL)
    def move(self, request: MoveRequest) -> None:
        self._journey.move(request)

    @workflow.run
    async def run(self, journey: JourneyInput) -> JourneyState:
        return await self._journey.run(journey)
