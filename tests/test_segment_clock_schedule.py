"""The segment clock's Temporal Schedule, on a real dev server (the time-skipping server has no
Schedules): created every 5 minutes with overlap SKIP on the worker's task queue, and brought up
to date when a worker starts again."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import ScheduleActionStartWorkflow, ScheduleOverlapPolicy
from temporalio.testing import WorkflowEnvironment

from launch.segment_schedule import ensure_segment_clock


async def test_the_clock_schedule_is_created_once_and_updated(dev_server: WorkflowEnvironment) -> None:
    client = dev_server.client
    await ensure_segment_clock(client, "queue-a", schedule_id="clock-test")
    described = await client.get_schedule_handle("clock-test").describe()
    schedule = described.schedule
    assert [i.every for i in schedule.spec.intervals] == [timedelta(minutes=5)]
    assert schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    assert isinstance(schedule.action, ScheduleActionStartWorkflow)
    assert (schedule.action.workflow, schedule.action.task_queue) == ("SegmentClock", "queue-a")
    assert described.info.next_action_times

    # A worker starting again (on another queue) updates it instead of failing.
    await ensure_segment_clock(client, "queue-b", schedule_id="clock-test")
    action = (await client.get_schedule_handle("clock-test").describe()).schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow) and action.task_queue == "queue-b"
