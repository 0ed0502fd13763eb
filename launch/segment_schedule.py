"""The ``flowline-segment-clock`` Schedule, created (or brought up to date) when a worker starts:
every 5 minutes a SegmentClock workflow re-evaluates every segment; a tick that finds the last
one still running is skipped (overlap SKIP), so slow evaluations never pile up.

Why every segment and not only the time-dependent ones: most rules that matter here depend on
the clock in some way (event windows, relative dates, "was today"), and a full evaluation is
one SQL query per segment plus the diff; it also heals anything an ingest missed (a segment
saved in another process within the cache's TTL, a crash between the steps of an ingest).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from flowline.segment_clock import EVERY, SCHEDULE_ID, ClockTick
from workflows.segment_clock import SegmentClockWorkflow

log = logging.getLogger(__name__)


def segment_clock_schedule(task_queue: str, every: timedelta = EVERY) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            SegmentClockWorkflow.run, ClockTick(), id=f"{SCHEDULE_ID}-run", task_queue=task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_segment_clock(
    client: Client, task_queue: str, *, schedule_id: str = SCHEDULE_ID, every: timedelta = EVERY
) -> None:
    """Create the Schedule, or update it to this task queue and interval (every worker calls it)."""
    schedule = segment_clock_schedule(task_queue, every)
    try:
        await client.create_schedule(schedule_id, schedule)
        log.info("created schedule %s (every %s)", schedule_id, every)
    except ScheduleAlreadyRunningError:

        def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(schedule_id).update(update)
