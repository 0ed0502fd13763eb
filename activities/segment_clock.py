"""The segment clock's activity: re-evaluate every segment (of every workspace, or one) as of
the tick's time and route the segment_entered / segment_exited events it writes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from temporalio import activity

from flowline import segment_clock
from flowline.activity_contracts import implements
from flowline.flow.triggers import SEGMENT_ENTERED
from flowline.segment_clock import ClockResult, ClockTick
from flowline.store import segment_members
from flowline.store.database import Store, utcnow
from launch.journey_start import JourneyStartFailed
from launch.routing import JourneyLauncher

log = logging.getLogger(__name__)


class SegmentClockActivities:
    def __init__(self, store: Store, launcher: JourneyLauncher) -> None:
        self.store = store
        self.launcher = launcher

    def all(self) -> Sequence[Callable[..., Any]]:
        return [self.reevaluate_segments]

    @implements(segment_clock.reevaluate_segments)
    async def reevaluate_segments(self, tick: ClockTick) -> ClockResult:
        """Each segment in a transaction of its own (none when nothing changed); its events routed
        right after."""
        now = tick.now or utcnow()
        async with self.store.connect() as conn:
            found = await segment_members.saved_segments(conn, tick.workspace_id)
        result = ClockResult()
        for listed in found:
            try:
                # The rule is read again under the segment's lock if anything changed.
                written = await segment_members.update_membership(self.store, listed, now)
            except Exception:
                # One failing segment must not hold back the others; the next tick tries again.
                log.exception("segment %s of %s not re-evaluated", listed.segment_id, listed.workspace_id)
                continue
            entered = sum(1 for e in written if e["name"] == SEGMENT_ENTERED)
            result = result.add(ClockResult(segments=1, entered=entered, exited=len(written) - entered))
            try:
                await self.launcher.dispatch(listed.workspace_id, written)
            except JourneyStartFailed as error:
                # The membership stands; its events stay unrouted and the sweeper routes them.
                log.warning("segment %s events not routed yet: %s", listed.segment_id, error)
            if activity.in_activity():
                activity.heartbeat(listed.workspace_id, listed.segment_id)
        return result
