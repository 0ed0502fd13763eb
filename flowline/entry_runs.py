"""Scheduled entry runs (``audience`` and ``date`` triggers): the contract between the Temporal
Schedule's workflow and its activity. Shared by the API, the worker and the workflow sandbox."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict
from temporalio import activity

ENTRY_RUN_WORKFLOW = "EntryRun"


class EntryRunRequest(BaseModel):
    """One run of a flow's entry schedule. ``scheduled_at`` is the run's nominal time (the
    schedule's TemporalScheduledStartTime): it names the run's journeys, so a retried or repeated
    run of the same time starts the same journeys and no others."""

    model_config = ConfigDict(extra="forbid")

    workspace_id: str
    flow_id: str
    scheduled_at: datetime | None = None


class EntryRunResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scheduled_at: datetime | None = None
    # Why the run started nobody (flow not running, trigger changed, outside start_at / end_at).
    skipped: str | None = None
    # Profiles considered and journeys started (or found started by an earlier attempt).
    considered: int = 0
    started: int = 0


@activity.defn(name="run_entries")
async def run_entries(request: EntryRunRequest) -> EntryRunResult:
    """The contract of the run's activity (activities/entries.py implements it)."""
    raise NotImplementedError
