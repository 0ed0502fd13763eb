"""The baselines of bench/journeys.py (a bare workflow that runs one no-op activity) and of
bench/sends.py (one that runs one send).

Unsandboxed, like the journey workflow (workflows/journey.py): the comparison is with the best
bare Temporal can do, and the sandbox's re-import of the module for every new workflow is a cost
either side can choose not to pay.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import activity, workflow


@activity.defn(name="bench_noop")
async def noop(value: str) -> str:
    return value


@workflow.defn(name="BenchBaseline", sandboxed=False)
class BaselineWorkflow:
    @workflow.run
    async def run(self, value: str) -> str:
        result: str = await workflow.execute_activity(
            noop, value, start_to_close_timeout=timedelta(seconds=60)
        )
        return result


@workflow.defn(name="BenchSendBaseline", sandboxed=False)
class SendBaselineWorkflow:
    """bench/sends.py's baseline: one activity that sends one message (``kind``: email or http);
    the activity lives in bench/sends.py, named here so this module stays small."""

    @workflow.run
    async def run(self, kind: str, key: str) -> str:
        result: str = await workflow.execute_activity(
            "bench_send", args=[kind, key], start_to_close_timeout=timedelta(seconds=60)
        )
        return result


@workflow.defn(name="BenchHerdBaseline", sandboxed=False)
class HerdBaselineWorkflow:
    """bench/herd.py's baseline: a timer to the shared instant ``at``, then bench/sends.py's http
    send (the same signed POST to the same sink as the journeys' webhook step)."""

    @workflow.run
    async def run(self, at: datetime, key: str) -> str:
        if (wait := at - workflow.now()) > timedelta(0):
            await workflow.sleep(wait)
        result: str = await workflow.execute_activity(
            "bench_send", args=["http", key], start_to_close_timeout=timedelta(seconds=60)
        )
        return result
