"""Journey throughput against bare Temporal workflows, on one local dev server.

    .venv/bin/python bench/journeys.py [--journeys N] [--concurrency C] [--extra-concurrency C2 ...]

(a) journeys: a published flow (event ``bench_event`` -> in-app send with a Liquid body -> exit)
    triggered through the real API in-process (POST /v1/events, one event per profile, at most C
    requests in flight), run by ``worker.running_worker``; timed from the first POST until every
    journey's workflow result is in.
(b) baseline: a bare workflow with one no-op activity, started with ``client.start_workflow`` at
    the same concurrency on its own task queue (same worker options); timed from the first start
    until every result is in.

Both run on the same dev server (started here from .venv/bin/temporal, never downloaded) and a
fresh SQLite database in a temp dir. The last line printed is machine-readable:
``journeys_per_s=<n> baseline_per_s=<n> ratio=<r>`` (for the --concurrency run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    # Run as a script: make the repo root importable. (Not at import: the workflow sandbox
    # re-imports this module, and Path.resolve is off limits there.)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BASELINE_QUEUE = "bench-baseline"
JOURNEY_QUEUE = "bench-journeys"
EVENT = "bench_event"
FLOW_ID = "bench-flow"
FLOW = {
    "id": FLOW_ID,
    "name": "Benchmark flow",
    "trigger": {"type": "event", "event": EVENT},
    "steps": [
        {
            "id": "hello",
            "type": "send",
            "channel": "in_app",
            "content": {
                "title": "Welcome",
                "body": "Hello {{ profile.id }}, thanks for {{ event.name }} on the {{ event.plan }} plan.",
            },
            "next": "done",
        },
        {"id": "done", "type": "exit"},
    ],
}


# ---------------------------------------------------------------- measuring


@dataclass
class Run:
    mode: str
    n: int
    concurrency: int
    seconds: float
    # Seconds from the first start until the last start (POST or start_workflow) returned.
    submit_seconds: float
    # CPU seconds this process (API, worker, driver; every thread) spent on the run.
    cpu_seconds: float
    # CPU seconds the Temporal dev server (our child process) spent on the run.
    server_cpu_seconds: float
    latencies: list[float] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return self.n / self.seconds

    def latency(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's live children: the Temporal dev server."""
    me, total = os.getpid(), 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:  # fields[1] is the parent pid; [11], [12] utime, stime
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def drive(
    mode: str,
    n: int,
    concurrency: int,
    submit: Callable[[int], Coroutine[Any, Any, list[str]]],
    wait: Callable[[str], Coroutine[Any, Any, Any]],
) -> Run:
    """Submit ``n`` items with at most ``concurrency`` in flight, then wait for every started id."""
    pending: list[asyncio.Task[Any]] = []
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def submitter() -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            began = time.perf_counter()
            ids = await submit(i)
            latencies.append(time.perf_counter() - began)
            if len(ids) != 1:
                raise RuntimeError(f"item {i} started {len(ids)} workflows: {ids}")
            pending.extend(asyncio.create_task(wait(x)) for x in ids)

    cpu = time.process_time()
    server_cpu = children_cpu()
    start = time.perf_counter()
    await asyncio.gather(*(submitter() for _ in range(concurrency)))
    submitted = time.perf_counter() - start
    await asyncio.gather(*pending)
    elapsed = time.perf_counter() - start
    cpu, server_cpu = time.process_time() - cpu, children_cpu() - server_cpu
    return Run(mode, n, concurrency, elapsed, submitted, cpu, server_cpu, latencies)


async def bench_baseline(client: Any, n: int, concurrency: int, warmup: int) -> Run:
    from temporalio.worker import Worker

    from bench.baseline_workflow import BaselineWorkflow as baseline
    from bench.baseline_workflow import noop as noop_activity

    tag = uuid.uuid4().hex[:8]

    async def submit(i: int) -> list[str]:
        wid = f"baseline-{tag}-{i}"
        await client.start_workflow(baseline.run, str(i), id=wid, task_queue=BASELINE_QUEUE)
        return [wid]

    async def wait(wid: str) -> Any:
        return await client.get_workflow_handle(wid).result()

    worker = Worker(
        client,
        task_queue=BASELINE_QUEUE,
        workflows=[baseline],
        activities=[noop_activity],
        max_concurrent_activities=100,
    )
    async with worker:
        if warmup:
            tag, real = f"warm-{tag}", tag
            await drive("warm-up", warmup, concurrency, submit, wait)
            tag = real
        return await drive("baseline", n, concurrency, submit, wait)


async def bench_journeys(
    client: Any, store: Any, http: Any, task_queue: str, n: int, concurrency: int, warmup: int
) -> Run:
    from worker import running_worker

    tag = uuid.uuid4().hex[:8]

    async def submit(i: int) -> list[str]:
        event = {
            "id": f"ev-{tag}-{i}",
            "profile_id": f"p-{tag}-{i}",
            "name": EVENT,
            "properties": {"plan": "pro"},
        }
        response = await http.post("/v1/events", json=event)
        if response.status_code != 202:
            raise RuntimeError(f"POST /v1/events answered {response.status_code}: {response.text}")
        journeys: list[str] = response.json()["journeys"]
        return journeys

    async def wait(jid: str) -> Any:
        state = await client.get_workflow_handle(jid).result()
        if state.get("status") != "completed":
            raise RuntimeError(f"journey {jid} ended {state.get('status')!r}")
        return state

    async with running_worker(client, store, task_queue, allow_private_outbound=True):
        if warmup:
            tag, real = f"warm-{tag}", tag
            await drive("warm-up", warmup, concurrency, submit, wait)
            tag = real
        return await drive("journeys", n, concurrency, submit, wait)


async def check_store(store: Any) -> tuple[int, int, str]:
    """Completed journeys, inbox messages, and one rendered message body."""
    from sqlalchemy import func, select

    from flowline.store.tables import inbox_messages, journeys

    async with store.connect() as conn:
        completed = await conn.scalar(select(func.count()).where(journeys.c.status == "completed"))
        messages = await conn.scalar(select(func.count()).select_from(inbox_messages))
        body = await conn.scalar(select(inbox_messages.c.body).limit(1))
    return int(completed or 0), int(messages or 0), str(body)


# ---------------------------------------------------------------- main


async def main(args: argparse.Namespace) -> int:
    import httpx
    from rich.console import Console
    from rich.table import Table
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from api.app import create_app
    from flowline.settings import Settings
    from flowline.store.database import Store
    from flowline.store.migrate import upgrade
    from flowline.store.workspaces import create_api_key, create_workspace
    from workflows import search_attributes as sa

    console = Console(width=160)
    concurrencies = [args.concurrency, *[c for c in args.extra_concurrency if c != args.concurrency]]
    runs: list[Run] = []

    with tempfile.TemporaryDirectory(prefix="flowline-bench-") as tmp, contextlib.ExitStack() as stack:
        if args.database == "postgres":
            from tests.databases import postgres_database

            # A schema of its own in the `test` database (FLOWLINE_TEST_POSTGRES), dropped at the end.
            url = stack.enter_context(postgres_database())
        else:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'flowline.db'}"
            upgrade(url)
        console.print(f"[bold]database[/] {args.database}")
        store = Store(url)
        async with store.begin() as conn:
            await create_workspace(conn, "bench", "Benchmark")
            key = await create_api_key(conn, "bench", "bench")

        console.print("[bold]starting[/] the Temporal dev server")
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=args.temporal,
            search_attributes=[sa.WORKSPACE_ID, sa.FLOW_ID, sa.FLOW_VERSION, sa.PROFILE_ID, sa.STEP_ID],
            ui=False,
            data_converter=pydantic_data_converter,
            dev_server_log_level="error",
        )
        try:
            client = env.client
            settings = Settings(database_url=url, task_queue=JOURNEY_QUEUE)
            app = create_app(settings, store=store, temporal=client)
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app),
                    base_url="http://flowline.bench",
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=60,
                ) as http,
            ):
                response = await http.put(f"/v1/flows/{FLOW_ID}", json=FLOW)
                response.raise_for_status()
                response = await http.post(f"/v1/flows/{FLOW_ID}/publish")
                response.raise_for_status()

                for c in concurrencies:
                    console.print(f"[bold]baseline[/] N={args.journeys} C={c}")
                    runs.append(await bench_baseline(client, args.journeys, c, args.warmup))
                    console.print(f"[bold]journeys[/] N={args.journeys} C={c}")
                    runs.append(
                        await bench_journeys(
                            client, store, http, JOURNEY_QUEUE, args.journeys, c, args.warmup
                        )
                    )
            completed, messages, body = await check_store(store)
        finally:
            await env.shutdown()
            await store.dispose()

    expected = len(concurrencies) * (args.journeys + args.warmup)
    if completed != expected or messages != expected or "{{" in body or "Hello p-" not in body:
        console.print(f"[red]expected {expected} completed journeys and inbox messages[/]", soft_wrap=True)
        console.print(f"[red]found {completed} and {messages}; a message body: {body!r}[/]", soft_wrap=True)
        return 1
    console.print(
        f"checked: {completed} journeys completed, {messages} messages, e.g. {body!r}", soft_wrap=True
    )

    table = Table(title="Journeys vs bare Temporal workflows")
    columns = ("mode", "N", "concurrency", "seconds", "per_s", "submit_s", "start_p50_ms", "start_p95_ms")
    for column in (*columns, "py_cpu_ms/item", "server_cpu_ms/item"):
        table.add_column(column, justify="left" if column == "mode" else "right", no_wrap=True)
    for run in runs:
        table.add_row(
            run.mode,
            str(run.n),
            str(run.concurrency),
            f"{run.seconds:.2f}",
            f"{run.per_s:.1f}",
            f"{run.submit_seconds:.2f}",
            f"{run.latency(0.5) * 1000:.1f}",
            f"{run.latency(0.95) * 1000:.1f}",
            f"{run.cpu_seconds / run.n * 1000:.1f}",
            f"{run.server_cpu_seconds / run.n * 1000:.1f}",
        )
    console.print(table)
    console.print(
        "submit_s: first start until the last POST /v1/events (journeys) or start_workflow (baseline) "
        "returned; start_p50/p95: latency of one such call; py_cpu: this process (API + worker + "
        "driver), server_cpu: the Temporal dev server, both per item.",
        soft_wrap=True,
    )
    if args.verbose:
        for run in runs:
            console.print(
                f"{run.mode} C={run.concurrency}: mean start {statistics.mean(run.latencies) * 1000:.1f} ms"
            )

    main_journeys = next(r for r in runs if r.mode == "journeys" and r.concurrency == args.concurrency)
    main_baseline = next(r for r in runs if r.mode == "baseline" and r.concurrency == args.concurrency)
    ratio = main_journeys.per_s / main_baseline.per_s
    print(
        f"journeys_per_s={main_journeys.per_s:.1f} baseline_per_s={main_baseline.per_s:.1f} ratio={ratio:.2f}"
    )
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--journeys", type=int, default=1000, help="items per measured run (default 1000)")
    parser.add_argument("--concurrency", type=int, default=20, help="starts in flight (default 20)")
    parser.add_argument(
        "--extra-concurrency",
        type=int,
        nargs="*",
        default=[],
        help="further concurrencies to run as well, e.g. 50 (default: none)",
    )
    parser.add_argument("--warmup", type=int, default=20, help="uncounted items before each run (default 20)")
    parser.add_argument(
        "--temporal",
        default=str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "temporal"),
        help="the Temporal CLI that runs the dev server (default .venv/bin/temporal)",
    )
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="the store: a fresh SQLite file (default, the embedded setup) or a fresh schema in "
        "PostgreSQL at FLOWLINE_TEST_POSTGRES (default 'host=127.0.0.1 port=5432 dbname=test')",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(asyncio.run(main(parse_args())))
