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


async def baseline(client: Any, n: int, concurrency: int, *, search_attributes: bool = False) -> float:
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

    began = time.perf_counter()
    await asyncio.gather(*(start(i) for i in range(n)))
    return time.perf_counter() - began


async def fanout(store: Any, client: Any, concurrency: int) -> tuple[float, Any]:
    """Seconds of one audience run (the entry activity's code path) and its result."""
    from activities.entries import EntryActivities
    from flowline.entry_runs import EntryRunRequest
    from workflows.routing import JourneyLauncher

    launcher = JourneyLauncher(store, client, JOURNEY_QUEUE)
    entries = EntryActivities(store, launcher, concurrency=concurrency)
    request = EntryRunRequest(workspace_id=WORKSPACE, flow_id=FLOW_ID, scheduled_at=datetime.now(UTC))
    began = time.perf_counter()
    result = await entries.run(request)
    return time.perf_counter() - began, result


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
        )
        try:
            client = env.client
            await baseline(client, min(200, args.profiles), args.concurrency)  # warm-up, not counted
            # Half the baseline before the fan-out and half after: the server's growing state and
            # the machine's other load weigh on both alike.
            half, sa_half = args.profiles // 2, args.search_attributes_baseline // 2
            base_s = await baseline(client, half, args.concurrency)
            sa_s = await baseline(client, sa_half, args.concurrency, search_attributes=True)
            print(
                f"baseline: {half} starts in {base_s:.1f} s; with search attributes {sa_half} in {sa_s:.1f} s"
            )
            fan_s, result = await fanout(store, client, args.concurrency)
            print(f"fan-out: {result.started} journeys started in {fan_s:.1f} s ({result})", flush=True)
            sa_after = await baseline(client, sa_half, args.concurrency, search_attributes=True)
            after_s = await baseline(client, args.profiles - half, args.concurrency)
            print(
                f"baseline: {args.profiles - half} starts in {after_s:.1f} s; "
                f"with search attributes {sa_half} in {sa_after:.1f} s"
            )
            base_s += after_s
            sa_s += sa_after
            fault = await check(store, client, args.profiles)
            if result.started != args.profiles or fault:
                print(f"check failed: {fault or f'started {result.started} of {args.profiles}'}")
                return 1
        finally:
            await env.shutdown()
            await store.dispose()

    fan, base = args.profiles / fan_s, args.profiles / base_s
    if sa_half:
        with_sa = 2 * sa_half / sa_s
        print(f"baseline_with_search_attributes_per_s={with_sa:.1f} ratio_to_it={fan / with_sa:.2f}")
    print(f"fanout_per_s={fan:.1f} baseline_per_s={base:.1f} ratio={fan / base:.2f}")
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
