"""Profile changes routed behind their writer: an import answers as soon as its batch is stored,
and the changes start their profile_change flows (and reach waiting journeys) after it, in this
process, one routing at a time.

While batches keep coming (an import in progress), routing takes at most ``BUSY_SHARE`` of the
time, so the import runs at nearly full speed (routing and the journeys it starts cost the API,
the worker and Temporal about as much as the import itself: bench/RESULTS.md, import); once
they stop, the backlog is routed flat out.

Nothing is lost when this process cannot route: the changes' profile_changed events stay
unrouted in the store and the sweeper routes them (JourneyLauncher.sweep).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

log = logging.getLogger(__name__)

Route = Callable[[str, Sequence[str]], Awaitable[None]]
# Profiles routed together (JourneyLauncher.route_profiles reads at most 1,000 unrouted events).
CHUNK = 500
# The share of wall time routing takes while changes keep arriving, and how recent the last one
# must be to count as "keep arriving".
BUSY_SHARE = 0.05
BUSY_SECONDS = 1.0


class ChangesBehind:
    def __init__(self, route: Route, reevaluate: Route, *, busy_share: float = BUSY_SHARE) -> None:
        # route: their unrouted changes routed, then their segments; reevaluate: segments only.
        self._route = route
        self._reevaluate = reevaluate
        self._busy_share = busy_share
        self._last_added = 0.0
        self._waiting = 0  # added and not routed yet
        self._queue: asyncio.Queue[tuple[str, list[str], bool]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def add(self, workspace_id: str, profile_ids: Sequence[str], *, routed: bool = False) -> None:
        """Route these profiles' changes (committed already) soon; returns at once. ``routed``:
        their changes were stored routed (nothing listens): only their segments are re-evaluated."""
        if not profile_ids:
            return
        self._queue.put_nowait((workspace_id, list(profile_ids), routed))
        self._waiting += 1
        self._last_added = time.monotonic()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def pending(self) -> bool:
        """Whether changes wait here (the sweeper leaves them to this process meanwhile)."""
        return self._waiting > 0

    async def idle(self) -> None:
        """Wait until everything added so far has been routed (or given to the sweeper)."""
        await self._queue.join()

    async def close(self, wait_seconds: float = 10.0) -> None:
        """Finish what was added (for at most ``wait_seconds``: the sweeper routes the rest);
        a routing cut off mid-transaction would leave SQLite's write lock to a dying statement."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle(), wait_seconds)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            workspace_id, profile_ids, routed = await self._queue.get()
            work = self._reevaluate if routed else self._route
            try:
                for start in range(0, len(profile_ids), CHUNK):
                    began = time.monotonic()
                    await work(workspace_id, profile_ids[start : start + CHUNK])
                    if began - self._last_added < BUSY_SECONDS:
                        took = time.monotonic() - began
                        await asyncio.sleep(took * (1 - self._busy_share) / self._busy_share)
            except asyncio.CancelledError:
                raise
            except Exception:  # the events stay unrouted: the sweeper routes them
                log.exception(
                    "profile changes of %d profiles not routed yet (the sweeper will)", len(profile_ids)
                )
            finally:
                self._waiting -= 1
                self._queue.task_done()
