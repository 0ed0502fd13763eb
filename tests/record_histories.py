"""Record Temporal histories of real journeys for the replay test.

    make histories        # or: .venv/bin/python -m tests.record_histories

Each scenario runs a real journey (time-skipping server, real worker, SQLite, local HTTP
receiver) and writes its history to tests/histories/<scenario>.json. Record new scenarios
when you add a workflow path; never re-record an existing file to make a replay pass —
a failing replay means the change needs a patch (workflows/patches.py; the procedure from
``patched`` to removal, and which histories prove each stage: docs/patches.md). Existing files
are kept; histories/retired/ holds old paths that today's code refuses, on purpose.

Payloads are encrypted with the tests' fixed key (tests/payload_keys.py), as Flowline's payload
codec does in production; histories recorded before the codec are plain JSON and stay so.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from flowline.elements.definition import DeclarativeElement
from flowline.flow.validation import parse_flow
from flowline.segment_clock import ClockTick
from flowline.store import elements, flows, profiles, segments, workspaces
from flowline.store.database import Store
from flowline.store.flows import PublishedFlow
from launch.payload_codec import data_converter
from launch.routing import JourneyLauncher
from tests.databases import sqlite_database
from tests.flows import target_flow
from tests.history_scenarios import EARLY, ELEMENTS, LIMITS, REPLIES, SCENARIOS, SIGNALS
from tests.payload_keys import TEST_PAYLOAD_KEYS
from tests.servers import HttpSink, http_sink, start_time_skipping
from worker import running_worker
from workflows.segment_clock import SegmentClockWorkflow

HISTORIES = Path(__file__).parent / "histories"
QUEUE = "record-histories"
# A queue no worker polls until the scenario's signals are in (history_scenarios.EARLY).
EARLY_QUEUE = "record-histories-early"


async def record(
    scenario: str, launcher: JourneyLauncher, sink: HttpSink, finish: Callable[[str], Awaitable[None]]
) -> dict[str, str]:
    """The histories of the scenario's journey: its last run, and its first if it continued as new."""
    make_flow, status = SCENARIOS[scenario]
    sink.status = status
    sink.replies = REPLIES.get(scenario, {})
    document = parse_flow(make_flow(sink.url))
    # Journeys start only in a flow the store has running (the launcher checks under its lock).
    async with launcher.store.begin() as conn:
        if await flows.flow_status(conn, "recording", document.id) is None:
            await flows.save_draft(launcher.store, conn, "recording", document)
        await flows.publish(conn, "recording", document.id, document)
    early = scenario in EARLY
    starter = JourneyLauncher(launcher.store, launcher.client, EARLY_QUEUE) if early else launcher
    journey_id = await starter.start(
        "recording",
        PublishedFlow(document.id, 1, document),
        "p-1",
        entry=scenario,
        limits=LIMITS.get(scenario),
    )
    assert journey_id is not None
    handle = launcher.client.get_workflow_handle(journey_id)
    first_run = (await handle.describe()).run_id
    if early:
        for name, payload in SIGNALS.get(scenario, []):
            await handle.signal(name, payload)
        async with running_worker(launcher.client, launcher.store, EARLY_QUEUE, allow_private_outbound=True):
            await finish(journey_id)
    else:
        await handle.query("state")  # answered after the first workflow task: the journey waits
        for name, payload in SIGNALS.get(scenario, []):
            await handle.signal(name, payload)
            # One signal per workflow task, as events come in life. (Queries right after a
            # continue-as-new time out on the test server, so the recorder gives the worker time.)
            await asyncio.sleep(0.3)
        await finish(journey_id)
    histories = {scenario: (await handle.fetch_history()).to_json()}
    last_run = (await handle.describe()).run_id
    if last_run != first_run:
        first = launcher.client.get_workflow_handle(journey_id, run_id=first_run)
        histories[f"{scenario}_first_run"] = (await first.fetch_history()).to_json()
    return histories


async def record_segment_clock(env: WorkflowEnvironment, store: Store) -> str:
    """One tick of the segment clock (workflows/segment_clock.py) over the recording workspace."""
    async with store.begin() as conn:
        await segments.put_segment(store, conn, "recording", "pros", "Pros", {"tag": "pro"})
    tick = ClockTick(now=datetime(2026, 1, 1, tzinfo=UTC), workspace_id="recording")
    handle = await env.client.start_workflow(
        SegmentClockWorkflow.run, tick, id="segment-clock-recording", task_queue=QUEUE
    )
    await handle.result()
    return (await handle.fetch_history()).to_json()


# Workflows other than journeys, recorded by a function of their own.
OTHERS = {"segment_clock_tick": record_segment_clock}


async def main(names: list[str]) -> None:
    env = await start_time_skipping(data_converter(TEST_PAYLOAD_KEYS))
    HISTORIES.mkdir(exist_ok=True)
    try:
        with (
            tempfile.TemporaryDirectory() as directory,
            sqlite_database(Path(directory)) as url,
            http_sink() as sink,
        ):
            store = Store(url)
            async with store.begin() as conn:
                await workspaces.create_workspace(conn, "recording", "recording")
                changes = {"anniversary": "2000-06-15", "timezone": "Europe/Berlin"}
                await profiles.upsert_profile(store, conn, "recording", "p-1", changes)
                target = parse_flow(target_flow())
                await flows.save_draft(store, conn, "recording", target)
                await flows.publish(conn, "recording", target.id, target)
                for element_id, definition in ELEMENTS.items():
                    element = DeclarativeElement.model_validate(definition(sink.url))
                    await elements.put_element(conn, "recording", element_id, element)
            launcher = JourneyLauncher(store, env.client, QUEUE)

            async def finish(journey_id: str) -> None:
                async with env.time_skipping_unlocked():  # type: ignore[attr-defined]
                    await env.client.get_workflow_handle(journey_id).result()

            async with running_worker(env.client, store, QUEUE, allow_private_outbound=True):
                for name in names or [*SCENARIOS, *OTHERS]:
                    target = HISTORIES / f"{name}.json"
                    if target.exists():
                        print(f"kept {name} (recorded before; delete the file to record it again)")
                        continue
                    if name in OTHERS:
                        target.write_text(await OTHERS[name](env, store))
                        print(f"recorded {name}")
                        continue
                    for recorded, text in (await record(name, launcher, sink, finish)).items():
                        (HISTORIES / f"{recorded}.json").write_text(text)
                        print(f"recorded {recorded}")
            await store.dispose()
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
    sys.stdout.flush()
    # Skip interpreter teardown: the SDK's native threads can abort it after all work is done.
    os._exit(0)
