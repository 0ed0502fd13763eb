"""A flow's entry schedule: the Temporal Schedule that runs its ``audience`` or ``date`` trigger.

One schedule per flow, ``flowline-entry-{workspace}-{flow}``, created or updated when a version
with such a trigger is published, deleted when a later version has another trigger or the flow
stops or drains. Each run starts ``EntryRunWorkflow``, which loads the flow's current version
itself, so a schedule that outlives its trigger by a moment starts nobody.

Calendar forms are exact: "second Monday" is days 8-14 AND Monday (Temporal's calendar spec
ANDs its fields), never cron's ``MON#2``, which Temporal reads as every Monday.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from flowline.entry_runs import ENTRY_RUN_WORKFLOW, EntryRunRequest
from flowline.flow.base import WEEKDAYS
from flowline.flow.triggers import AudienceTrigger, CalendarSchedule, DateTrigger
from flowline.store.flows import DEFAULT_LIFETIME, PublishedFlow
from workflows import search_attributes as sa

# The trigger types that run on an entry schedule.
SCHEDULED_TRIGGERS = frozenset({"audience", "date"})
# Date triggers scan hourly, on the hour (UTC): see activities/entries.py.
DATE_SCAN_EVERY = timedelta(hours=1)
# A run missed while the server was down is still made within this window, not later.
CATCHUP_WINDOW = timedelta(hours=1)


def schedule_id(workspace_id: str, flow_id: str) -> str:
    return f"flowline-entry-{workspace_id}-{flow_id}"


def _calendar(calendar: CalendarSchedule) -> ScheduleCalendarSpec:
    hour, minute = (int(part) for part in calendar.at.split(":"))
    fields: dict[str, list[ScheduleRange]] = {
        "hour": [ScheduleRange(hour)],
        "minute": [ScheduleRange(minute)],
    }
    if calendar.weekdays:
        # Temporal counts weekdays from Sunday = 0; ours are named from Monday.
        fields["day_of_week"] = [ScheduleRange((WEEKDAYS.index(d) + 1) % 7) for d in calendar.weekdays]
    if calendar.week_of_month is not None:
        n = calendar.week_of_month
        fields["day_of_month"] = [ScheduleRange((n - 1) * 7 + 1, min(7 * n, 31))]
    elif calendar.days_of_month:
        fields["day_of_month"] = [ScheduleRange(d) for d in sorted(set(calendar.days_of_month))]
    if calendar.months:
        fields["month"] = [ScheduleRange(m) for m in sorted(set(calendar.months))]
    return ScheduleCalendarSpec(**fields)  # type: ignore[arg-type]


def entry_spec(
    trigger: AudienceTrigger | DateTrigger, workspace_zone: str | None, flow: PublishedFlow | None = None
) -> ScheduleSpec:
    """When the trigger runs: an audience's schedule read in its zone (else the workspace's, else
    UTC); a date trigger's scan hourly. Bounded by the flow's start_at / end_at when given."""
    start_at = end_at = None
    if flow is not None:
        settings = flow.document.settings
        start_at, end_at = settings.start_at, settings.end_at
        if end_at is None and flow.published_at is not None:
            end_at = flow.published_at + DEFAULT_LIFETIME
    if isinstance(trigger, DateTrigger):
        return ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=DATE_SCAN_EVERY)], start_at=start_at, end_at=end_at
        )
    schedule = trigger.schedule
    zone_name = schedule.timezone or workspace_zone or "UTC"
    if schedule.every is not None:
        return ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=schedule.every)], start_at=start_at, end_at=end_at
        )
    if schedule.cron is not None:
        return ScheduleSpec(
            cron_expressions=[schedule.cron], time_zone_name=zone_name, start_at=start_at, end_at=end_at
        )
    assert schedule.calendar is not None
    return ScheduleSpec(
        calendars=[_calendar(schedule.calendar)], time_zone_name=zone_name, start_at=start_at, end_at=end_at
    )


def _schedule(workspace_id: str, flow: PublishedFlow, spec: ScheduleSpec, task_queue: str) -> Schedule:
    action = ScheduleActionStartWorkflow(
        ENTRY_RUN_WORKFLOW,
        EntryRunRequest(workspace_id=workspace_id, flow_id=flow.flow_id),
        id=f"entry-{workspace_id}-{flow.flow_id}",
        task_queue=task_queue,
        typed_search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(sa.WORKSPACE_ID, workspace_id),
                SearchAttributePair(sa.FLOW_ID, flow.flow_id),
                SearchAttributePair(sa.FLOW_VERSION, flow.version),
            ]
        ),
    )
    policy = SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW)
    return Schedule(action=action, spec=spec, policy=policy)


async def sync_entry_schedule(
    client: Client, task_queue: str, workspace_id: str, flow: PublishedFlow, workspace_zone: str | None
) -> bool:
    """Make the flow's schedule match its (just published) version: created or updated for an
    audience or date trigger, deleted for any other. True if the flow has a schedule now."""
    trigger = flow.document.trigger
    if not isinstance(trigger, AudienceTrigger | DateTrigger):
        await remove_entry_schedule(client, workspace_id, flow.flow_id)
        return False
    schedule = _schedule(workspace_id, flow, entry_spec(trigger, workspace_zone, flow), task_queue)
    sid = schedule_id(workspace_id, flow.flow_id)
    try:
        await client.create_schedule(sid, schedule)
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(sid).update(replace)
    return True


def reads_workspace_zone(flow: PublishedFlow) -> bool:
    """Whether the flow's entry schedule is read in the workspace's time zone: an audience cron or
    calendar without a zone of its own (intervals and the hourly date scan have no wall clock)."""
    trigger = flow.document.trigger
    if not isinstance(trigger, AudienceTrigger):
        return False
    schedule = trigger.schedule
    return schedule.timezone is None and schedule.every is None


async def remove_entry_schedule(client: Client, workspace_id: str, flow_id: str) -> bool:
    """Delete the flow's entry schedule (runs in flight finish); False if it had none."""
    try:
        await client.get_schedule_handle(schedule_id(workspace_id, flow_id)).delete()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True
