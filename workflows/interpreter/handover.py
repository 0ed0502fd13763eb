"""The hand-over to a new run (continue-as-new) when a run grows long or moves to a new version:
where the next run picks up (a Resume)."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

from flowline.journey import HeardEvent, JourneyInput, Resume
from workflows.interpreter.run_state import RunState


class ContinueAsNew(Exception):
    """Raised inside a wait when the run should hand over to a fresh one (see Resume)."""

    def __init__(self, step_id: str, until: datetime | None, heard: list[HeardEvent]) -> None:
        super().__init__(step_id)
        self.step_id, self.until, self.heard = step_id, until, heard


def handover(run: RunState, journey: JourneyInput, handing: ContinueAsNew) -> Resume:
    """Where the next run picks up."""
    state = run.state
    keep = journey.limits.path_entries_kept
    dropped = max(0, len(state.path) - keep)
    return Resume(
        step_id=handing.step_id,
        entered_at=state.entered_at or workflow.now(),
        visits=dict(run.visits),
        path=state.path[dropped:],
        path_dropped=state.path_dropped + dropped,
        variables=state.variables,
        converted_at=state.converted_at,
        until=handing.until,
        heard=handing.heard,
        runs=state.runs + 1,
        moves=state.moves,
        path_written=run.path_written,
    )
