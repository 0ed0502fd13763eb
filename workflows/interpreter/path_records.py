"""The journey's path in the store (journey_steps), written without an activation per step.

The journey's end writes the entries not yet written (its JourneyEnd carries them). Before a
wait that is not short, and before continuing as new, a local activity writes the entries so far,
the current one still open: the stats then count the earlier visits and show the journey as
"at" its step. Entries are numbered (seq) from the journey's first step on, across runs; writes
are upserts by (journey, seq), so a retried or replayed write changes nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

from flowline.journey import JourneySteps, PathEntry, contracts
from workflows.interpreter.run_state import RunState
from workflows.patches import PATCHES

# A wait at least this long first writes the path (shorter ones are over before anyone looks).
WRITE_BEFORE_WAITS_OF = timedelta(minutes=1)


def unwritten(run: RunState) -> tuple[int, list[PathEntry]]:
    """The first seq to write and the entries from it: those never written, and the last one
    written (it was open then and may have been left since)."""
    dropped = run.state.path_dropped
    start = max(dropped, run.path_written - 1)
    return start, run.state.path[start - dropped :]


async def write_path_before_wait(run: RunState, until: datetime) -> None:
    if until - workflow.now() >= WRITE_BEFORE_WAITS_OF:
        await write_path(run)


async def write_path(run: RunState) -> None:
    """The path so far, with a local activity, unless nothing changed since the last write."""
    total = run.state.path_dropped + len(run.state.path)
    if run.ref is None or total == run.path_written or not PATCHES.journey_steps.new_path():
        return
    start, entries = unwritten(run)
    await workflow.execute_local_activity(
        contracts.record_journey_steps,
        JourneySteps(journey=run.ref, start=start, path=entries),
        start_to_close_timeout=timedelta(seconds=30),
    )
    run.path_written = total
