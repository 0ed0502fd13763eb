"""The activity of a scheduled entry run: start the journeys of an ``audience`` or ``date`` flow.

Audience: everyone the segment's rule (or the inline condition) holds for at the run's time, a
page at a time (one claim transaction per page, the starts outside it). Date: the profiles whose
date attribute names a moment between the previous run and shortly after the next one; each
journey starts at its exact moment (Temporal's start delay), or at once for a moment just missed.

Journey entries derive from the run's time (audience) or the occurrence's date (date), so a
retried attempt finds the journeys it started and starts no others; the heartbeat carries the
last profile id done, so a retry resumes there.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio import activity

from flowline import entry_runs
from flowline.activity_contracts import implements
from flowline.clock import zone
from flowline.conditions.rules import Condition
from flowline.entry_runs import EntryRunRequest, EntryRunResult
from flowline.flow.date_moments import candidate_prefixes, occurrences
from flowline.flow.triggers import AudienceTrigger, DateTrigger
from flowline.store import entry_candidates, flows, segments, workspaces
from flowline.store.database import Store, utcnow
from flowline.store.flows import PublishedFlow
from launch.journey_start import BatchEntry
from launch.routing import JourneyLauncher

PAGE = 500
# Pages claimed ahead of the one starting: the next claim overlaps the current starts.
PAGES_AHEAD = 1
# Date runs are hourly: each looks back over the previous run's hour (moments it missed start at
# once) and ahead to a little past the next run (so a late next run loses no moment).
DATE_RUN_EVERY = timedelta(hours=1)
DATE_LOOKAHEAD_MARGIN = timedelta(minutes=10)
_RULE: TypeAdapter[Condition] = TypeAdapter(Condition)


@dataclass(frozen=True)
class _Page:
    last: str  # the last profile id read
    count: int  # profiles read
    entries: list[BatchEntry]


@dataclass
class EntryProgress:
    """How far a run got (the heartbeat's details): the last profile id whose page started."""

    after: str | None = None
    considered: int = 0
    started: int = 0


class EntryActivities:
    def __init__(self, store: Store, launcher: JourneyLauncher, *, concurrency: int = 50) -> None:
        self.store = store
        self.launcher = launcher
        self.concurrency = concurrency

    def all(self) -> Sequence[Callable[..., Any]]:
        return [self.run_entries]

    @implements(entry_runs.run_entries)
    async def run_entries(self, request: EntryRunRequest) -> EntryRunResult:
        details = activity.info().heartbeat_details if activity.in_activity() else ()
        progress = EntryProgress(*details[0]) if details else EntryProgress()
        return await self.run(request, progress, heartbeat=_heartbeat)

    async def run(
        self,
        request: EntryRunRequest,
        progress: EntryProgress | None = None,
        *,
        heartbeat: Callable[[EntryProgress], None] = lambda _p: None,
        now: datetime | None = None,
    ) -> EntryRunResult:
        """The run (also callable outside an activity: tests and bench/fanout.py fix ``now``)."""
        at = request.scheduled_at or utcnow()
        now = now or utcnow()
        progress = progress or EntryProgress()
        async with self.store.connect() as conn:
            flow = await flows.current_version(conn, request.workspace_id, request.flow_id)
            workspace_zone = await workspaces.workspace_timezone(conn, request.workspace_id)
            if flow is None:
                return EntryRunResult(scheduled_at=at, skipped=f"flow {request.flow_id!r} is not running")
            trigger = flow.document.trigger
            closed = flow.closed_reason(at)
            if closed is not None:
                return EntryRunResult(scheduled_at=at, skipped=closed)
            condition = None
            if isinstance(trigger, AudienceTrigger):
                condition = await _audience_rule(conn, request.workspace_id, trigger)
                if condition is None:
                    return EntryRunResult(scheduled_at=at, skipped=f"no segment {trigger.segment!r}")
        if isinstance(trigger, AudienceTrigger) and condition is not None:
            await self._audience(request.workspace_id, flow, condition, at, progress, heartbeat)
        elif isinstance(trigger, DateTrigger):
            await self._dates(
                request.workspace_id, flow, trigger, at, now, workspace_zone, progress, heartbeat
            )
        else:
            return EntryRunResult(
                scheduled_at=at, skipped=f"flow {request.flow_id!r} has a {trigger.type} trigger now"
            )
        return EntryRunResult(scheduled_at=at, considered=progress.considered, started=progress.started)

    async def _audience(
        self,
        workspace_id: str,
        flow: PublishedFlow,
        condition: Condition,
        at: datetime,
        progress: EntryProgress,
        heartbeat: Callable[[EntryProgress], None],
    ) -> None:
        entry = f"audience:{at.isoformat()}"

        async def pages() -> AsyncIterator[_Page]:
            after = progress.after
            while True:
                async with self.store.connect() as conn:
                    page = await entry_candidates.audience_page(
                        conn, workspace_id, condition, at, after=after, limit=PAGE
                    )
                if not page:
                    return
                yield _Page(page[-1], len(page), [BatchEntry(p, entry) for p in page])
                if len(page) < PAGE:
                    return
                after = page[-1]

        await self._fan_out(workspace_id, flow, pages(), progress, heartbeat)

    async def _dates(
        self,
        workspace_id: str,
        flow: PublishedFlow,
        trigger: DateTrigger,
        at: datetime,
        now: datetime,
        workspace_zone: str | None,
        progress: EntryProgress,
        heartbeat: Callable[[EntryProgress], None],
    ) -> None:
        start, end = at - DATE_RUN_EVERY, at + DATE_RUN_EVERY + DATE_LOOKAHEAD_MARGIN
        if flow.published_at is not None:
            start = max(start, flow.published_at)  # no journeys for moments before the flow ran
        prefixes, position = candidate_prefixes(trigger, start, end)

        async def pages() -> AsyncIterator[_Page]:
            after = progress.after
            while True:
                async with self.store.connect() as conn:
                    page = await entry_candidates.dated_page(
                        conn,
                        workspace_id,
                        trigger.attribute,
                        prefixes,
                        position,
                        at,
                        trigger.profile,
                        after=after,
                        limit=PAGE,
                    )
                if not page:
                    return
                batch = []
                for profile_id, value, profile_zone in page:
                    tz = zone(trigger.timezone, profile_zone, workspace_zone)
                    try:
                        found = occurrences(trigger, value, tz, start, end)
                    except ValueError:
                        continue  # not a date: no moment
                    for day, moment in found:
                        if flow.closed_reason(moment) is None:
                            start_at = moment if moment > now else None
                            batch.append(BatchEntry(profile_id, f"date:{day.isoformat()}", start_at))
                yield _Page(page[-1][0], len(page), batch)
                if len(page) < PAGE:
                    return
                after = page[-1][0]

        await self._fan_out(workspace_id, flow, pages(), progress, heartbeat)

    async def _fan_out(
        self,
        workspace_id: str,
        flow: PublishedFlow,
        pages: AsyncIterator[_Page],
        progress: EntryProgress,
        heartbeat: Callable[[EntryProgress], None],
    ) -> None:
        """Claim and start page after page, the next page's claim beside the current page's starts
        (one gate bounds the starts in flight), settling pages in order so that the heartbeat's
        cursor only passes pages whose journeys all started."""
        gate = asyncio.Semaphore(self.concurrency)
        pending: deque[tuple[asyncio.Task[list[str]], _Page]] = deque()

        async def settle() -> None:
            task, page = pending.popleft()
            started = await task
            progress.after, progress.considered = page.last, progress.considered + page.count
            progress.started += len(started)
            heartbeat(progress)

        try:
            async for page in pages:
                batch = self.launcher.start_batch(workspace_id, flow, page.entries, gate=gate)
                pending.append((asyncio.create_task(batch), page))
                while len(pending) > PAGES_AHEAD:
                    await settle()
            while pending:
                await settle()
        finally:
            for task, _ in pending:
                task.cancel()


async def _audience_rule(
    conn: AsyncConnection, workspace_id: str, trigger: AudienceTrigger
) -> Condition | None:
    if trigger.condition is not None:
        return trigger.condition
    assert trigger.segment is not None
    segment = await segments.get_segment(conn, workspace_id, trigger.segment)
    if segment is None:
        return None
    return _RULE.validate_python(segment["rule"])


def _heartbeat(progress: EntryProgress) -> None:
    activity.heartbeat([progress.after, progress.considered, progress.started])
