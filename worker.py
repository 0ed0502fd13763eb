"""The Flowline worker: runs journey workflows and their activities.

python worker.py            # settings from FLOWLINE_* environment variables
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from activities import (
    CallApiActivities,
    ConditionActivities,
    CustomElementActivities,
    EntryActivities,
    ExportActivities,
    FlowActivities,
    JourneyActivities,
    ProfileStepActivities,
    SegmentClockActivities,
    SendActivities,
)
from activities.log_context import LogContext
from flowline import logs, metrics
from flowline.channels.outbound import outbound_client
from flowline.exports.batcher import deliver_until
from flowline.secret_box import NO_KEYS_WARNING
from flowline.settings import Settings, get_settings
from flowline.store.database import Store
from launch.client import connect
from launch.routing import JourneyLauncher
from launch.segment_schedule import ensure_segment_clock
from workflows import interpreter as _interpreter  # noqa: F401  (below)
from workflows.entry_run import EntryRunWorkflow
from workflows.journey import JourneyWorkflow
from workflows.segment_clock import SegmentClockWorkflow

log = logging.getLogger("flowline.worker")
WORKFLOWS = [JourneyWorkflow, SegmentClockWorkflow, EntryRunWorkflow]
# The interpreter is imported above, when the worker starts, rather than by the first journey's
# first activation (JourneyWorkflow imports it only when it runs, so that the API need not).
# On SIGTERM/SIGINT sends in flight get this long to finish and be marked sent; cancelled at once,
# a send the receiver already has would go out again on the retry. Below the 10 s a container
# runtime waits before it kills (and the 20 s `cli.py run` waits).
SHUTDOWN_GRACE = timedelta(seconds=5)


def activity_implementations(
    store: Store, http: httpx.AsyncClient, launcher: JourneyLauncher, public_url: str | None
) -> list[Callable[..., Any]]:
    """Every activity this worker runs: one implementation of each contract a workflow calls
    (flowline/activity_contracts.py's EVERY_CONTRACT; tests/test_activity_contracts.py checks)."""
    return [
        *JourneyActivities(store, http).all(),
        *FlowActivities(store, launcher).all(),
        *CallApiActivities(store, http).all(),
        *CustomElementActivities(store, http).all(),
        *SendActivities(store, http, public_url).all(),
        *ConditionActivities(store).all(),
        *ProfileStepActivities(store, launcher).all(),
        *SegmentClockActivities(store, launcher).all(),
        *EntryActivities(store, launcher).all(),
        *ExportActivities(store).all(),
    ]


@contextlib.asynccontextmanager
async def running_worker(
    client: Client,
    store: Store,
    task_queue: str,
    *,
    webhook_timeout: float = 10.0,
    allow_private_outbound: bool = False,
    public_url: str | None = None,
    shutdown_grace: timedelta = timedelta(0),
) -> AsyncIterator[Worker]:
    """A worker on ``task_queue`` for as long as the block runs (tests use this too).
    ``allow_private_outbound`` lets webhooks, calls and providers reach private addresses;
    ``public_url``: where tracking links in emails point (None: emails go as written)."""
    async with outbound_client(timeout=webhook_timeout, allow_private=allow_private_outbound) as http:
        # add_to_flow starts journeys on this worker's task queue; profile steps route their events.
        launcher = JourneyLauncher(store, client, task_queue)
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=WORKFLOWS,
            activities=activity_implementations(store, http, launcher, public_url),
            max_concurrent_activities=100,
            graceful_shutdown_timeout=shutdown_grace,
            # Each activity's journey, flow and workspace ids on its log lines (flowline/logs.py).
            interceptors=[LogContext()],
        )
        async with worker:
            yield worker


@contextlib.asynccontextmanager
async def exporting(store: Store, settings: Settings, stop: asyncio.Event) -> AsyncIterator[None]:
    """The export batcher, delivering the outbox until ``stop`` is set (unless settings say
    another process does: FLOWLINE_EXPORT_BATCHER=false, `cli.py export-batcher`)."""
    if not settings.export_batcher:
        yield
        return
    task = asyncio.create_task(deliver_until(stop, store, settings))
    try:
        yield
    finally:
        stop.set()
        await task


def temporal_runtime(settings: Settings) -> Runtime | None:
    """The Temporal SDK's runtime with its metrics on a Prometheus endpoint, when asked for
    (FLOWLINE_TEMPORAL_METRICS_PORT); None: the SDK's default runtime (no metrics endpoint).
    One per process: only the worker's own process makes it (tests connect without it)."""
    if not settings.temporal_metrics_port:
        return None
    address = f"{settings.worker_metrics_host}:{settings.temporal_metrics_port}"
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))


async def serve(settings: Settings) -> None:
    client = await connect(settings, runtime=temporal_runtime(settings))
    store = Store(settings.database_url, secret_keys=settings.payload_keys.get_secret_value())
    if not store.secrets.seals:
        logging.getLogger("flowline.secrets").warning(NO_KEYS_WARNING)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        # Segments whose rules depend on the clock are re-evaluated on this Schedule.
        await ensure_segment_clock(client, settings.task_queue)
        with metrics.serving(settings.worker_metrics_host, settings.worker_metrics_port):
            async with running_worker(
                client,
                store,
                settings.task_queue,
                webhook_timeout=settings.webhook_timeout_seconds,
                allow_private_outbound=settings.allow_private_outbound,
                public_url=settings.public_url,
                shutdown_grace=SHUTDOWN_GRACE,
            ):
                log.info("worker polling task queue %s on %s", settings.task_queue, settings.temporal_address)
                async with exporting(store, settings, stop):
                    await stop.wait()
    finally:
        await store.dispose()


if __name__ == "__main__":
    settings = get_settings()
    # JSON lines or plain (FLOWLINE_LOG_FORMAT); httpx's line per webhook request is left out.
    logs.configure("worker", settings.log_format, settings.log_level)
    asyncio.run(serve(settings))
