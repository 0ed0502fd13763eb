"""The segment clock's contract: a Temporal Schedule re-evaluates every segment as time passes
(a rule such as "no session in the last 9 days" becomes true without any new data)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import AwareDatetime, BaseModel
from temporalio import activity

SCHEDULE_ID = "flowline-segment-clock"
EVERY = timedelta(minutes=5)


class ClockTick(BaseModel):
    # The evaluation time: the workflow fills it from its own clock, so a retried activity
    # evaluates as of the same moment (and writes the same, deduplicated, events).
    now: AwareDatetime | None = None
    # One workspace only (tests, a manual run); None: every workspace.
    workspace_id: str | None = None


class ClockResult(BaseModel):
    segments: int = 0
    entered: int = 0
    exited: int = 0

    def add(self, other: ClockResult) -> ClockResult:
        return ClockResult(
            segments=self.segments + other.segments,
            entered=self.entered + other.entered,
            exited=self.exited + other.exited,
        )


@activity.defn(name="segments.reevaluate_all")
async def reevaluate_segments(tick: ClockTick) -> ClockResult:
    """The contract of the tick's activity (activities/segment_clock.py implements it)."""
    raise NotImplementedError
