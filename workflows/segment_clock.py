"""The segment clock workflow: one run per tick of the ``flowline-segment-clock`` Schedule
(launch/segment_schedule.py) re-evaluates every segment as of the tick's time."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from flowline.segment_clock import ClockResult, ClockTick, reevaluate_segments


@workflow.defn(name="SegmentClock")
class SegmentClockWorkflow:
    @workflow.run
    async def run(self, tick: ClockTick) -> ClockResult:
        fixed = ClockTick(now=tick.now or workflow.now(), workspace_id=tick.workspace_id)
        return await workflow.execute_activity(
            reevaluate_segments,
            fixed,
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(minutes=10),  # one large segment between two beats
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
