"""Audience fan-out: journeys an audience run starts per second, against bare Temporal starts.

    .venv/bin/python bench/fanout.py [--database postgres|sqlite] [--profiles N] [--concurrency C]

(a) baseline: ``client.start_workflow`` of bench/baseline_workflow.py's bare workflow, N times
    with at most C in flight, timed from the first start until the last returned; half of them
    before the fan-out and half after.
(b) fan-out: N profiles inserted directly in bulk, all in the audience of a published flow
    (``audience`` trigger, inline condition ``plan is pro``, one exit step); one run of the entry
    activity's code path (``EntryActivities.run``: pages of 500 members, one claim transaction
    per page, then the page's starts with at most C in flight), timed from its call to its return.

Both only start workflows (no worker polls while they are timed: the machine's two cores go to
the starts, as in the baseline); afterwards the bench checks the journey records and a sample of
the started workflows. Same dev server (started here from .venv/bin/temporal, never downloaded),
same run. The last line is machine-readable:
``fanout_per_s=<n> baseline_per_s=<n> ratio=<r>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    # Run as a script: make the repo root importable (not at import: the sandbox re-imports).
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORKSPACE = "bench"
FLOW_ID = "fanout"
BASELINE_QUEUE = "bench-fanout-baseline"
JOURNEY_QUEUE = "bench-fanout-journeys"
FLOW = {
    "id": FLOW_ID,
    "name": "Fan-out benchmark",
    "trigger": {
        "type": "audience",
        "condition": {"attribute": "plan", "op": "is", "value": "pro"},
        "schedule": {"every": "1d"},
    },
    "settings": {"reentry": "concurrent"},
    "steps": [{"id": "done", "type": "exit"}],
}


@dataclass
class Timed:
    """Wall seconds, and CPU seconds of this process and of the dev server (our child)."""

    seconds: float = 0.0
    cpu: float = 0.0
    server_cpu: float = 0.0

    def __iadd__(self, other: Timed) -> Timed:
        self.seconds += other.seconds
        self.cpu += other.cpu
        self.server_cpu += other.server_cpu
        return self

    def per_item_ms(self, n: int) -> str:
        ours, server = self.cpu / n * 1000, self.server_cpu / n * 1000
        return f"{self.seconds:.1f} s (CPU per start: ours {ours:.1f} ms, server {server:.1f} ms)"


@contextlib.contextmanager
def timed() -> Iterator[Timed]:
    from bench.journeys import children_cpu

    result = Timed()
    wall, cpu, server = time.perf_counter(), time.process_time(), children_cpu()
    yield result
    result.seconds = time.perf_counter() - wall
    result.cpu, result.server_cpu = time.process_time() - cpu, children_cpu() - server


async def insert_profiles(store: Any, n: int) -> float:
    """N profiles in the audience, in bulk (one executemany per 5,000 rows); returns seconds."""
    from flowline.store.tables import profiles

    created = datetime.now(UTC) - timedelta(hours=1)
    began = time.perf_counter()
    for offset in range(0, n, 5_000):
        rows = [
            {
                "workspace_id": WORKSPACE,
                "id": f"p-{i:07d}",
                "attributes": {"plan": "pro"},
                "tags": [],
                "do_not_contact": [],
                "created_at": created,
                "updated_at": created,
            }
            for i in range(offset, min(n, offset + 5_000))
        ]
        async with store.begin() as conn:
            await conn.execute(profiles.insert(), rows)
    return time.perf_counter() - began


async def baseline(client: Any, n: int, concurrency: int, *, search_attributes: bool = False) -> Timed:
    """Seconds to start N bare workflows with at most ``concurrency`` in flight (with the five
    search attributes a journey's start carries, when asked)."""
    from temporalio.common import SearchAttributePair, TypedSearchAttributes

    from bench.baseline_workflow import BaselineWorkflow
    from workflows import search_attributes as sa

    tag = uuid.uuid4().hex[:8]
    gate = asyncio.Semaphore(concurrency)

    def attributes(i: int) -> TypedSearchAttributes:
        pairs = [
            SearchAttributePair(sa.WORKSPACE_ID, WORKSPACE),
            SearchAttributePair(sa.FLOW_ID, FLOW_ID),
            SearchAttributePair(sa.FLOW_VERSION, 1),
            SearchAttributePair(sa.PROFILE_ID, f"p-{i:07d}"),
            SearchAttributePair(sa.STEP_ID, "done"),
        ]
        return TypedSearchAttributes(pairs if search_attributes else [])

    async def start(i: int) -> None:
        async with gate:
            await client.start_workflow(
                BaselineWorkflow.run,
                str(i),
                id=f"baseline-{tag}-{i}",
                task_queue=BASELINE_QUEUE,
                search_attributes=attributes(i),
            )

    with timed() as took:
        await asyncio.gather(*(start(i) for i in range(n)))
    return took


async def fanout(store: Any, client: Any, concurrency: int) -> tuple[Timed, Any]:
    """Seconds of one audience run (the entry activity's code path) and its result."""
    from activities.entries import EntryActivities
    from flowline.entry_runs import EntryRunRequest
    from launch.routing import JourneyLauncher

    launcher = JourneyLauncher(store, client, JOURNEY_QUEUE)
    entries = EntryActivities(store, launcher, concurrency=concurrency)
    request = EntryRunRequest(workspace_id=WORKSPACE, flow_id=FLOW_ID, scheduled_at=datetime.now(UTC))
    with timed() as took:
        result = await entries.run(request)
    return took, result


async def check(store: Any, client: Any, n: int) -> str | None:
    """None if N journeys are recorded (one flow_entered each) and a sample of them is started."""
    from sqlalchemy import func, select

    from flowline.store.tables import events, journeys

    async with store.connect() as conn:
        recorded = await conn.scalar(select(func.count()).select_from(journeys))
        entered = await conn.scalar(select(func.count()).where(events.c.name == "flow_entered"))
        sample = (await conn.execute(select(journeys.c.id).limit(20))).scalars().all()
    if recorded != n or entered != n:
        return f"expected {n} journeys and flow_entered events, found {recorded} and {entered}"
    for journey_id in sample:
        await client.get_workflow_handle(journey_id).describe()  # raises if it was never started
    return None


async def main(args: argparse.Namespace) -> int:
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from flowline.flow.validation import parse_flow
    from flowline.store import flows
    from flowline.store.database import Store
    from flowline.store.migrate import upgrade
    from flowline.store.workspaces import create_workspace
    from workflows import search_attributes as sa

    with tempfile.TemporaryDirectory(prefix="flowline-fanout-") as tmp, contextlib.ExitStack() as stack:
        if args.database == "postgres":
            from tests.databases import postgres_database

            url = stack.enter_context(postgres_database())
        else:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'flowline.db'}"
            upgrade(url)
        store = Store(url)
        async with store.begin() as conn:
            await create_workspace(conn, WORKSPACE, "Benchmark")
            document = parse_flow(FLOW)
            await flows.save_draft(store, conn, WORKSPACE, document)
            await flows.publish(conn, WORKSPACE, FLOW_ID, document)
        inserted = await insert_profiles(store, args.profiles)
        print(f"database {args.database}: {args.profiles} profiles inserted in {inserted:.1f} s", flush=True)

        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=args.temporal,
            search_attributes=[sa.WORKSPACE_ID, sa.FLOW_ID, sa.FLOW_VERSION, sa.PROFILE_ID, sa.STEP_ID],
            ui=False,
            data_converter=pydantic_data_converter,
            dev_server_log_level="error",
            # On disk, as `make run` has it: the in-memory store kept every workflow of the run in
            # the server's heap, and the dev server died of it during the second baseline.
            dev_server_database_filename=str(Path(tmp) / "temporal.db"),
            dev_server_extra_args=[
                *("--sqlite-pragma", "journal_mode=wal"),
                *("--sqlite-pragma", "synchronous=normal"),
            ],
        )
        try:
            client = env.client
            await baseline(client, min(200, args.profiles), args.concurrency)  # warm-up, not counted
            # Half the baseline before the fan-out and half after: the server's growing state and
            # the machine's other load weigh on both alike.
            half, sa_half = args.profiles // 2, args.search_attributes_baseline // 2
            base = await baseline(client, half, args.concurrency)
            with_sa = await baseline(client, sa_half, args.concurrency, search_attributes=True)
            fan, result = await fanout(store, client, args.concurrency)
            print(
                f"fan-out: {result.started} journeys started in {fan.per_item_ms(args.profiles)}", flush=True
            )
            with_sa += await baseline(client, sa_half, args.concurrency, search_attributes=True)
            base += await baseline(client, args.profiles - half, args.concurrency)
            print(f"baseline: {args.profiles} bare starts in {base.per_item_ms(args.profiles)}")
            if sa_half:
                print(
                    f"baseline: {2 * sa_half} starts with search attributes in "
                    f"{with_sa.per_item_ms(2 * sa_half)}"
                )
            fault = await check(store, client, args.profiles)
            if result.started != args.profiles or fault:
                print(f"check failed: {fault or f'started {result.started} of {args.profiles}'}")
                return 1
        finally:
            await env.shutdown()
            await store.dispose()

    fan_per_s, base_per_s = args.profiles / fan.seconds, args.profiles / base.seconds
    if sa_half:
        sa_per_s = 2 * sa_half / with_sa.seconds
        print(f"baseline_with_search_attributes_per_s={sa_per_s:.1f} ratio_to_it={fan_per_s / sa_per_s:.2f}")
    print(f"fanout_per_s={fan_per_s:.1f} baseline_per_s={base_per_s:.1f} ratio={fan_per_s / base_per_s:.2f}")
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=50_000, help="audience size (default 50,000)")
    parser.add_argument("--concurrency", type=int, default=50, help="starts in flight (default 50)")
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument(
        "--search-attributes-baseline",
        type=int,
        default=10_000,
        help="bare starts with a journey's five search attributes, to compare (default 10,000; 0: none)",
    )
    parser.add_argument(
        "--temporal",
        default=str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "temporal"),
        help="the Temporal CLI that runs the dev server (default .venv/bin/temporal)",
    )
    return parser.parse_args()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(asyncio.run(main(parse_args())))
