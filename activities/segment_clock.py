"""The segment clock's activity: re-evaluate every segment (of every workspace, or one) as of
the tick's time and route the segment_entered / segment_exited events it writes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from temporalio import activity

from flowline.flow.triggers import SEGMENT_ENTERED
from flowline.segment_clock import REEVALUATE_SEGMENTS, ClockResult, ClockTick
from flowline.store import segment_members
from flowline.store.database import Store, utcnow
from workflows.routing import JourneyLauncher, JourneyStartFailed

log = logging.getLogger(__name__)


class SegmentClockActivities:
    def __init__(self, store: Store, launcher: JourneyLauncher) -> None:
        self.store = store
        self.launcher = launcher

    def all(self) -> Sequence[Callable[..., Any]]:
        return [self.reevaluate_segments]

    @activity.defn(name=REEVALUATE_SEGMENTS)
    async def reevaluate_segments(self, tick: ClockTick) -> ClockResult:
        """Each segment in a transaction of its own; its events routed right after."""
        now = tick.now or utcnow()
        async with self.store.connect() as conn:
            found = await segment_members.saved_segments(conn, tick.workspace_id)
        result = ClockResult()
        for listed in found:
            async with self.store.begin() as conn:
                # Read again in the transaction: the rule may have changed since the listing.
                segment = await segment_members.saved_segment(conn, listed.workspace_id, listed.segment_id)
                if segment is None:
                    continue
                written = await segment_members.reevaluate(self.store, conn, segment, now)
            entered = sum(1 for e in written if e["name"] == SEGMENT_ENTERED)
            result = result.add(ClockResult(segments=1, entered=entered, exited=len(written) - entered))
            try:
                await self.launcher.dispatch(segment.workspace_id, written)
            except JourneyStartFailed as error:
                # The membership stands; its events stay unrouted and the sweeper routes them.
                log.warning("segment %s events not routed yet: %s", segment.segment_id, error)
            if activity.in_activity():
                activity.heartbeat(listed.workspace_id, listed.segment_id)
        return result
