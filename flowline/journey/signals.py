"""The signals a journey takes: an event of its profile (routed to it because its flow listens to
the event's name), a stop (from the API or the flow's lifecycle), and a move to a newer version
of its flow (publishing with move_journeys; see workflows/interpreter/moves.py)."""

from __future__ import annotations

from pydantic import Field

from flowline.flow.document import FlowDocument
from flowline.journey.base import StrictModel

# The names recorded in histories (JourneyWorkflow's handlers); the event's payload is a TriggerEvent.
EVENT_SIGNAL = "event"
STOP_SIGNAL = "stop"
MOVE_SIGNAL = "move"


class MoveRequest(StrictModel):
    """Move to ``version`` (whose document is ``flow``) if waiting at a step it also has."""

    version: int = Field(ge=1)
    flow: FlowDocument


class StopRequest(StrictModel):
    reason: str = Field(min_length=1, max_length=200)
