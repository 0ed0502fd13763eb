"""The baselines of bench/journeys.py (a bare workflow that runs one no-op activity) and of
bench/sends.py (one that runs one send).

Unsandboxed, like the journey workflow (workflows/journey.py): the comparison is with the best
bare Temporal can do, and the sandbox's re-import of the module for every new workflow is a cost
either side can choose not to pay.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class CostVariant:
    """bench/costs.py's bare workflow with one of a journey's items added (each alone, then all):
    ``pad`` bytes more in the workflow's and the activity's input, ``patches`` workflow.patched
    markers, a heartbeat from the activity; search attributes are the start's (the caller's)."""

    value: str
    pad: str = ""
    patches: int = 0
    heartbeat: bool = False


@activity.defn(name="bench_noop_heartbeat")
async def noop_heartbeat(value: str) -> str:
    activity.heartbeat()
    return value[:16]


@workflow.defn(name="BenchCostVariant", sandboxed=False)
class CostVariantWorkflow:
    @workflow.run
    async def run(self, variant: CostVariant) -> str:
        for i in range(variant.patches):
            workflow.patched(f"bench-patch-{i}")
        result: str = await workflow.execute_activity(
            noop_heartbeat if variant.heartbeat else noop,
            variant.value + variant.pad,
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=timedelta(seconds=30) if variant.heartbeat else None,
        )
        return result[:16]


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
