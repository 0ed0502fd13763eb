"""The thundering herd: N journeys whose pauses end at one instant, against N bare timers.

    .venv/bin/python bench/herd.py [--journeys N] [--concurrency C] [--database postgres|sqlite]

An audience campaign at 10:00: every journey waits in a ``pause`` ``until`` the same absolute
date-time, then sends a ``webhook`` to a local HTTP sink (a process of its own: bench/sinks.py,
which notes when each POST arrived). Measured: the time from that instant until every webhook
has arrived, and each webhook's lateness (arrival - instant).

(a) herd: a published flow (event ``herd_event`` -> pause until the instant -> webhook -> exit),
    journeys started by ``POST /v1/events`` through the real API in-process (one event per
    person, at most C requests in flight), run by ``worker.running_worker``.
(b) baseline: a bare workflow (bench/baseline_workflow.py ``HerdBaselineWorkflow``) whose timer
    ends at its own shared instant, then one activity making the same signed POST to the same
    sink, started with ``client.start_workflow`` at the same concurrency on its own task queue
    with the worker options of ``running_worker``.

One after the other (herd first) on the same dev server (on disk with WAL, as bench/sends.py)
and store (PostgreSQL by default: a fresh schema in the local ``test`` database). Starting N
takes a while, so each instant is chosen after a warm-up that measures the start rate: start
time + N / rate x ``--safety`` + ``--margin`` seconds. The herd's instant only counts once every
journey is parked (its journey_steps row at the pause written: waits of a minute or more write one), the
baseline's once every start returned; a run whose starts overran its instant fails.

The last line is machine-readable: ``herd_seconds=<n> baseline_seconds=<n> ratio=<r>``
(ratio = baseline / herd: 1.0 means the journeys wake as fast as bare Temporal timers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    # Run as a script: make the repo root importable (not at import: the sandbox re-imports).
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORKSPACE = "bench"  # bench/sends.py's insert_profiles writes into it
HERD_QUEUE = "bench-herd"
BASELINE_QUEUE = "bench-herd-baseline"
EVENT = "herd_event"
WAKE_STEP = "wake"
WEBHOOK_DATA = {"greeting": "Hello {{ profile.first_name }}", "plan": "{{ event.plan }}"}


def flow(flow_id: str, pause: dict[str, Any], sink_url: str) -> dict[str, Any]:
    """event -> pause (``pause``: its ``for`` or ``until``) -> webhook to the sink -> exit."""
    return {
        "id": flow_id,
        "name": f"Herd benchmark ({flow_id})",
        "trigger": {"type": "event", "event": f"{EVENT}_{flow_id}"},
        "steps": [
            {"id": WAKE_STEP, "type": "pause", **pause, "next": "send"},
            {"id": "send", "type": "webhook", "url": sink_url, "data": WEBHOOK_DATA, "next": "done"},
            {"id": "done", "type": "exit"},
        ],
    }


# ---------------------------------------------------------------- measuring


@dataclass
class Wake:
    mode: str  # herd | baseline
    n: int
    start_seconds: float  # first start until the last start returned
    parked_before: float  # seconds between the last journey parked (or start returned) and the instant
    lateness: list[float]  # each arrival - the instant, sorted
    py_cpu: float  # this process (worker, API, driver) from the instant to the last arrival
    server_cpu: float  # the Temporal dev server, same window
    db_cpu: float  # the postgres processes alive throughout (others' sessions' too), same window

    @property
    def seconds(self) -> float:
        return self.lateness[-1]

    @property
    def start_rate(self) -> float:
        return self.n / self.start_seconds

    def pct(self, q: float) -> float:
        return self.lateness[min(len(self.lateness) - 1, math.ceil(q * len(self.lateness)) - 1)]


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) so far of each live process among ``pids``."""
    found = {}
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            found[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found


def cpu_since(before: dict[int, float]) -> float:
    """CPU seconds spent since ``before`` by the processes alive at both ends (postgres backends
    come and go with other sessions' connections; ours stay in the pool)."""
    after = cpu_by_pid(list(before))
    return sum(after[pid] - before[pid] for pid in after)


def pids_named(name: str) -> list[int]:
    found = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() == name:
                found.append(int(comm.parent.name))
    return found


def children(exclude: int) -> list[int]:
    """This process's children (the dev server), without the sink's process."""
    me, found = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == me:
                found.append(int(stat.parent.name))
    return [p for p in found if p != exclude]


async def start_all(n: int, concurrency: int, start: Any) -> float:
    """``start(i)`` for i < n with at most ``concurrency`` in flight; the seconds it took."""
    from bench.journeys import drive

    async def submit(i: int) -> list[str]:
        await start(i)
        return [str(i)]

    async def nothing(_: str) -> None:
        return None

    return float((await drive("start", n, concurrency, submit, nothing)).submit_seconds)


async def arrived(sinks: Any, expected: int, deadline: float, what: str) -> list[float]:
    """Every arrival at the sink once ``expected`` have arrived (or fail at ``deadline``)."""
    while (received := sinks.counts("http")[0]) < expected:
        if time.time() > deadline:
            raise RuntimeError(f"{what}: {received} of {expected} webhooks arrived in time")
        await asyncio.sleep(0.05)
    arrivals: list[float] = sinks.http_arrivals()
    return arrivals


async def wake(
    mode: str,
    sinks: Any,
    n: int,
    concurrency: int,
    rate: float,
    safety: float,
    margin: float,
    start: Any,
    publish: Any,
    parked: Any,
) -> Wake:
    """Choose the instant, ``publish(instant)``, start N, wait until ``parked()`` says N, then
    measure from the instant to the N-th arrival."""
    began = time.time()
    instant = math.ceil(began + n / rate * safety + margin)
    await publish(datetime.fromtimestamp(instant, UTC))
    before = sinks.counts("http")[0]
    print(f"{mode}: starting {n} (instant in {instant - began:.0f} s)", flush=True)
    start_seconds = await start_all(n, concurrency, start)
    while (count := await parked()) < n:
        if time.time() > instant:
            raise RuntimeError(f"{mode}: only {count} of {n} parked by the instant; raise --margin")
        await asyncio.sleep(0.2)
    parked_before = instant - time.time()
    print(
        f"{mode}: {n} started in {start_seconds:.1f} s, parked {parked_before:.1f} s before the instant",
        flush=True,
    )
    if parked_before < 0:
        raise RuntimeError(f"{mode}: parked after the instant; raise --margin")
    server, postgres = children(exclude=sinks.pid), pids_named("postgres")
    await asyncio.sleep(max(0.0, instant - time.time()))
    cpu, server_cpu, db_cpu = time.process_time(), cpu_by_pid(server), cpu_by_pid(postgres)
    arrivals = await arrived(sinks, before + n, instant + max(300.0, n / 4), mode)
    cpu = time.process_time() - cpu
    server_seconds, db_seconds = cpu_since(server_cpu), cpu_since(db_cpu)
    lateness = sorted(t - instant for t in arrivals[before:])
    return Wake(mode, n, start_seconds, parked_before, lateness, cpu, server_seconds, db_seconds)


async def warm_rate(n: int, concurrency: int, sinks: Any, start: Any) -> float:
    """Starts per second over ``n`` warm-up starts (their webhooks are awaited, not counted)."""
    before = sinks.counts("http")[0]
    seconds = await start_all(n, concurrency, start)
    await arrived(sinks, before + n, time.time() + 120, "warm-up")
    return n / seconds


# ---------------------------------------------------------------- the two sides


async def herd(args: argparse.Namespace, client: Any, store: Any, api: Any, sinks: Any) -> Wake:
    from sqlalchemy import func, select

    from bench.sends import insert_profiles
    from flowline.store.tables import journey_steps
    from worker import running_worker

    async def publish(flow_id: str, pause: dict[str, Any]) -> None:
        document = flow(flow_id, pause, sinks.http_url)
        (await api.put(f"/v1/flows/{flow_id}", json=document)).raise_for_status()
        (await api.post(f"/v1/flows/{flow_id}/publish")).raise_for_status()

    def starter(flow_id: str, people: list[str]) -> Any:
        async def start(i: int) -> None:
            event = {"id": f"ev-{people[i]}", "profile_id": people[i], "name": f"{EVENT}_{flow_id}"}
            response = await api.post("/v1/events", json={**event, "properties": {"plan": "pro"}})
            if response.status_code != 202 or len(response.json()["journeys"]) != 1:
                raise RuntimeError(f"POST /v1/events answered {response.status_code}: {response.text}")

        return start

    async def parked() -> int:
        query = select(func.count()).where(
            journey_steps.c.flow_id == "herd", journey_steps.c.step_id == WAKE_STEP
        )
        async with store.connect() as conn:
            return int(await conn.scalar(query) or 0)

    warm = [f"herd-warm-{i:06d}" for i in range(args.warmup)]
    people = [f"herd-{i:06d}" for i in range(args.journeys)]
    await insert_profiles(store, warm + people)
    await publish("herd-warm", {"for": "1s"})
    async with running_worker(client, store, HERD_QUEUE, allow_private_outbound=True):
        rate = await warm_rate(args.warmup, args.concurrency, sinks, starter("herd-warm", warm))
        print(f"herd: warm-up {rate:.1f} journeys started/s", flush=True)
        return await wake(
            "herd",
            sinks,
            args.journeys,
            args.concurrency,
            rate,
            args.safety,
            args.margin,
            starter("herd", people),
            lambda at: publish("herd", {"until": at.isoformat()}),
            parked,
        )


async def baseline(args: argparse.Namespace, client: Any, sends: Any, sinks: Any) -> Wake:
    from temporalio.worker import Worker

    from bench.baseline_workflow import HerdBaselineWorkflow

    instant = [datetime.now(UTC)]
    started = [0]

    def starter(label: str) -> Any:
        async def start(i: int) -> None:
            wid = f"herd-baseline-{label}-{i:06d}"
            await client.start_workflow(
                HerdBaselineWorkflow.run, args=[instant[0], wid], id=wid, task_queue=BASELINE_QUEUE
            )
            started[0] += 1

        return start

    async def publish(at: datetime) -> None:
        instant[0], started[0] = at, 0

    async def parked() -> int:
        return started[0]  # a bare workflow is at its timer once its first task ran: no record

    # The worker options of worker.running_worker.
    worker = Worker(
        client,
        task_queue=BASELINE_QUEUE,
        workflows=[HerdBaselineWorkflow],
        activities=[sends.send],
        max_concurrent_activities=100,
    )
    async with worker:
        instant[0] = datetime.now(UTC) + timedelta(seconds=1)
        rate = await warm_rate(args.warmup, args.concurrency, sinks, starter("warm"))
        print(f"baseline: warm-up {rate:.1f} workflows started/s", flush=True)
        return await wake(
            "baseline",
            sinks,
            args.journeys,
            args.concurrency,
            rate,
            args.safety,
            args.margin,
            starter("run"),
            publish,
            parked,
        )


# ---------------------------------------------------------------- main


async def main(args: argparse.Namespace) -> int:
    import httpx
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from api.app import create_app
    from bench.send_baseline import BaselineSends
    from bench.sinks import sinks as started_sinks
    from flowline.channels.outbound import outbound_client
    from flowline.settings import Settings
    from flowline.store.database import Store
    from flowline.store.migrate import upgrade
    from flowline.store.workspaces import create_api_key, create_workspace, webhook_secret
    from workflows import search_attributes as sa

    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory(prefix="flowline-herd-") as tmp,
        started_sinks() as sinks,
        contextlib.ExitStack() as stack,
    ):
        if args.database == "postgres":
            from tests.databases import postgres_database

            url = stack.enter_context(postgres_database())
        else:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'flowline.db'}"
            upgrade(url)
        print(
            f"database {args.database}, {args.journeys} journeys, concurrency {args.concurrency}", flush=True
        )
        store = Store(url)
        async with store.begin() as conn:
            await create_workspace(conn, WORKSPACE, "Benchmark")
            key = await create_api_key(conn, WORKSPACE, "bench")
            secret = await webhook_secret(conn, WORKSPACE)
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=args.temporal,
            search_attributes=[sa.WORKSPACE_ID, sa.FLOW_ID, sa.FLOW_VERSION, sa.PROFILE_ID, sa.STEP_ID],
            ui=False,
            data_converter=pydantic_data_converter,
            dev_server_log_level="error",
            dev_server_database_filename=str(Path(tmp) / "temporal.db"),
            dev_server_extra_args=[
                *("--sqlite-pragma", "journal_mode=wal"),
                *("--sqlite-pragma", "synchronous=normal"),
            ],
        )
        try:
            client = env.client
            app = create_app(Settings(database_url=url, task_queue=HERD_QUEUE), store=store, temporal=client)
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app),
                    base_url="http://flowline.bench",
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=120,
                ) as api,
                outbound_client(timeout=10.0, allow_private=True) as http,
            ):
                herd_run = await herd(args, client, store, api, sinks)
                print(f"herd: {herd_run.seconds:.2f} s from the instant to the last webhook", flush=True)
                sends = BaselineSends(None, http, sinks.http_url, secret)
                base_run = await baseline(args, client, sends, sinks)
            faults = await check(store, sinks, args.journeys + args.warmup, 2 * (args.journeys + args.warmup))
        finally:
            await env.shutdown()
            await store.dispose()
    if faults:
        print("check failed: " + "; ".join(faults))
        return 1
    report([herd_run, base_run], args, load_before, os.getloadavg())
    return 0


async def check(store: Any, sinks: Any, journeys: int, posts: int) -> list[str]:
    """Faults: every journey's webhook delivery 'sent'; every POST at the sink once."""
    from sqlalchemy import func, select

    from flowline.store.tables import deliveries

    query = select(func.count()).where(deliveries.c.channel == "webhook", deliveries.c.status == "sent")
    async with store.connect() as conn:
        sent = int(await conn.scalar(query) or 0)
    received, distinct = sinks.counts("http")
    faults = []
    if sent != journeys:
        faults.append(f"{sent} webhook deliveries sent, expected {journeys}")
    if received != posts or distinct != posts:
        faults.append(f"{received} POSTs ({distinct} distinct) at the sink, expected {posts}")
    return faults


def report(
    runs: list[Wake],
    args: argparse.Namespace,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=180)
    table = Table(title=f"{args.journeys} pauses ending at one instant ({args.database})")
    columns = (
        "mode", "n", "seconds", "p50 late s", "p99 late s", "webhooks/s",
        "starts/s", "parked before s", "py cpu ms/wh", "server cpu ms/wh", "postgres cpu ms/wh",
    )  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "mode" else "right", no_wrap=True)
    for run in runs:
        table.add_row(
            run.mode,
            str(run.n),
            f"{run.seconds:.2f}",
            f"{run.pct(0.5):.2f}",
            f"{run.pct(0.99):.2f}",
            f"{run.n / run.seconds:.1f}",
            f"{run.start_rate:.1f}",
            f"{run.parked_before:.1f}",
            f"{run.py_cpu / run.n * 1000:.1f}",
            f"{run.server_cpu / run.n * 1000:.1f}",
            f"{run.db_cpu / run.n * 1000:.1f}",
        )
    console.print(table)
    console.print(
        "seconds: from the instant until the last webhook arrived; late: each webhook's arrival - "
        "the instant; starts/s: the N starts (POST /v1/events or start_workflow) at concurrency "
        f"{args.concurrency}; cpu: from the instant to the last arrival, per webhook (py: API + worker + "
        "driver in this process; server: the dev server; postgres: its processes alive throughout, "
        "other sessions' too). Load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after.",
        soft_wrap=True,
    )
    herd_run, base_run = runs
    ratio = base_run.seconds / herd_run.seconds
    print(f"herd_seconds={herd_run.seconds:.2f} baseline_seconds={base_run.seconds:.2f} ratio={ratio:.2f}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--journeys", type=int, default=10_000, help="per side (default 10,000)")
    parser.add_argument("--concurrency", type=int, default=50, help="starts in flight (default 50)")
    parser.add_argument("--warmup", type=int, default=100, help="uncounted starts first (default 100)")
    parser.add_argument(
        "--margin",
        type=float,
        default=75.0,
        help="seconds added to the estimated start time (default 75: waits of a minute or more "
        "write the journey's path, which is how parked journeys are counted)",
    )
    parser.add_argument(
        "--safety",
        type=float,
        default=1.25,
        help="the warm-up's start time per item is multiplied by this (default 1.25; more on a "
        "machine whose load changes: starts slow down with it)",
    )
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgres"],
        default="postgres",
        help="a fresh schema in PostgreSQL at FLOWLINE_TEST_POSTGRES (default) or a fresh SQLite file",
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
