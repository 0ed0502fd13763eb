"""The workflow a flow's entry schedule starts on each run: one activity does the work.

Small and deterministic: the run's time comes from its input or the schedule's search attribute
(TemporalScheduledStartTime), else the workflow's clock.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from flowline.entry_runs import ENTRY_RUN_WORKFLOW, EntryRunRequest, EntryRunResult, run_entries

SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


@workflow.defn(name=ENTRY_RUN_WORKFLOW)
class EntryRunWorkflow:
    @workflow.run
    async def run(self, request: EntryRunRequest) -> EntryRunResult:
        scheduled = request.scheduled_at or workflow.info().typed_search_attributes.get(SCHEDULED_START)
        run = request.model_copy(update={"scheduled_at": scheduled or workflow.now()})
        return await workflow.execute_activity(
            run_entries,
            run,
            # A large audience takes minutes; the heartbeat notices a dead worker sooner.
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=5),
                maximum_interval=timedelta(minutes=5),
                maximum_attempts=20,
            ),
        )
