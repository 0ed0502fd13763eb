"""The journey's path in the store (journey_steps), written without an activation per step.

The journey's end writes the entries not yet written (its JourneyEnd carries them). Before a
wait that is not short, and before continuing as new, a local activity writes the entries so far,
the current one still open: the stats then count the earlier visits and show the journey as
"at" its step. Entries are numbered (seq) from the journey's first step on, across runs; writes
are upserts by (journey, seq), so a retried or replayed write changes nothing.

A base class of the interpreter (through workflows/waits.py): the determinism rules apply.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

from flowline.journey import RECORD_JOURNEY_STEPS, JourneyRef, JourneyState, JourneySteps, PathEntry
from workflows.patches import PATCHES

# A wait at least this long first writes the path (shorter ones are over before anyone looks).
WRITE_BEFORE_WAITS_OF = timedelta(minutes=1)


class PathRecords:
    """Sets by the interpreter: ``_state``, ``_ref`` (in ``run``), ``_path_written``."""

    _state: JourneyState
    _ref: JourneyRef | None
    # Entries (by seq) in journey_steps; the last of them was written while still open.
    _path_written: int

    def _unwritten(self) -> tuple[int, list[PathEntry]]:
        """The first seq to write and the entries from it: those never written, and the last one
        written (it was open then and may have been left since)."""
        dropped = self._state.path_dropped
        start = max(dropped, self._path_written - 1)
        return start, self._state.path[start - dropped :]

    async def _write_path_before_wait(self, until: datetime) -> None:
        if until - workflow.now() >= WRITE_BEFORE_WAITS_OF:
            await self._write_path()

    async def _write_path(self) -> None:
        """The path so far, with a local activity, unless nothing changed since the last write."""
        total = self._state.path_dropped + len(self._state.path)
        if self._ref is None or total == self._path_written or not PATCHES.journey_steps.new_path():
            return
        start, entries = self._unwritten()
        await workflow.execute_local_activity(
            RECORD_JOURNEY_STEPS,
            JourneySteps(journey=self._ref, start=start, path=entries),
            start_to_close_timeout=timedelta(seconds=30),
        )
        self._path_written = total
