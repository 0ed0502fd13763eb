"""The journey workflow: one profile in one flow version (see workflows/interpreter/).

Not sandboxed: the sandbox re-imported this module for every new journey, a sixth of the
worker's CPU under bench/latency.py, and guarded nothing, since the interpreter it wraps was
passed through it anyway. tests/test_workflow_determinism.py keeps clocks, randomness and I/O out
of this module and of the interpreter's; the recorded histories (tests/test_replay.py) check
that the commands stay the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow

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

if TYPE_CHECKING:
    from workflows.interpreter import JourneyInterpreter


@workflow.defn(name="Journey", sandboxed=False)
class JourneyWorkflow:
    def __init__(self) -> None:
        # Imported here so that signalling a journey (launch/, services/) never imports the
        # interpreter; harmless in the workflow, which is not sandboxed.
        from workflows.interpreter import JourneyInterpreter

        self._journey: JourneyInterpreter = JourneyInterpreter()

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
