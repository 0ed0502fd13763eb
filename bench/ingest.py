"""Ingest throughput on the `make run` stack: events stored and routed per second.

    .venv/bin/python bench/ingest.py [--database sqlite postgres] [--events 200000] [--batch 500]

Starts ``python cli.py run`` (Temporal dev server, migrations, worker, API under uvicorn) on free
ports with a temporary data directory, publishes FLOWS flows each triggered by an event name of
its own (``signup_<k>``, a pause of 7 days then exit: their journeys stay in flight, listening
only to ``unsubscribed``, which is never sent), then sends ``--events`` events with
``POST /v1/events`` in batches of ``--batch`` from ``--senders`` concurrent senders (httpx).
About 1 % of the events (``--trigger-share``) are ``signup_<k>`` and start journeys; the rest are
page views, clicks and the like of ``--profiles`` distinct profiles, which no journey needs.
The clock runs from the first send until every event is routed (``events.routed_at`` set); a
batch the API refuses (503) is sent again, as a client would.

Afterwards it checks that every event is stored once and routed, and that the journeys claimed are
exactly the (profile, flow) pairs the trigger events admit (re-entry ``after_exit``: one journey
in flight per profile and flow). The last line printed is machine-readable:
``sqlite_events_per_s=<n> postgres_events_per_s=<n>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import Stack, flowline_run

FLOWS = 5
TRIGGER_SHARE = 0.01
OTHER_NAMES = ["page_viewed", "clicked", "searched", "item_viewed", "cart_updated"]


def trigger_name(k: int) -> str:
    return f"signup_{k}"


def flow(k: int) -> dict[str, Any]:
    return {
        "id": f"ingest-{k}",
        "name": f"Ingest benchmark {k}",
        "trigger": {"type": "event", "event": trigger_name(k)},
        # Journeys in flight listen to an event the stream never has: the router looks at them
        # for their people's events, and none needs a signal.
        "settings": {"stop_when": [{"event": "unsubscribed"}]},
        "steps": [
            {"id": "rest", "type": "pause", "for": "7d"},
            {"id": "done", "type": "exit"},
        ],
    }


@dataclass
class Load:
    batches: list[bytes]
    # (profile, flow) pairs the trigger events admit: the journeys expected.
    journeys: set[tuple[str, str]]
    events: int


def make_load(events: int, batch: int, profiles: int, seed: int, share: float) -> Load:
    """The events, made (and encoded) before the clock starts so the sender costs little."""
    rng = random.Random(seed)
    tag = f"{rng.getrandbits(32):08x}"
    expected: set[tuple[str, str]] = set()
    batches = []
    for start in range(0, events, batch):
        items = []
        for i in range(start, min(events, start + batch)):
            profile = f"p-{rng.randrange(profiles)}"
            if rng.random() < share:
                k = rng.randrange(FLOWS)
                name = trigger_name(k)
                expected.add((profile, f"ingest-{k}"))
            else:
                name = rng.choice(OTHER_NAMES)
            item = {"id": f"{tag}-{i}", "profile_id": profile, "name": name}
            item["properties"] = {"page": f"/p/{rng.randrange(1000)}", "n": i}
            items.append(item)
        batches.append(json.dumps(items).encode())
    return Load(batches, expected, events)


@dataclass
class Run:
    database: str
    events: int
    batches: int
    senders: int
    seconds: float = 0.0
    sent_seconds: float = 0.0
    resent: int = 0
    post_ms: list[float] = field(default_factory=list)
    stored: int = 0
    routed: int = 0
    journeys: int = 0
    expected_journeys: int = 0
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def correct(self) -> bool:
        return self.stored == self.events == self.routed and self.journeys == self.expected_journeys


async def counts(url: str) -> tuple[int, int, int]:
    """(events stored, events routed, journeys) in the database; the events the engine writes
    itself (flow_entered) are not counted."""
    from sqlalchemy import func, select

    from flowline.store.database import Store
    from flowline.store.events import JOURNEY_EVENTS
    from flowline.store.tables import events, journeys

    store = Store(url)
    sent = select(func.count()).select_from(events).where(events.c.name.not_in(sorted(JOURNEY_EVENTS)))
    try:
        async with store.connect() as conn:
            stored = (await conn.execute(sent)).scalar_one()
            routed = (await conn.execute(sent.where(events.c.routed_at.is_not(None)))).scalar_one()
            started = (await conn.execute(select(func.count()).select_from(journeys))).scalar_one()
    finally:
        await store.dispose()
    return int(stored), int(routed), int(started)


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used (/proc/stat): the other work shows."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def measure(stack: Stack, url: str, load: Load, run: Run, wait_s: float) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {stack.key}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=run.senders, max_keepalive_connections=run.senders)
    async with httpx.AsyncClient(base_url=stack.api, headers=headers, timeout=120, limits=limits) as http:
        for k in range(FLOWS):
            (await http.put(f"/v1/flows/ingest-{k}", json=flow(k))).raise_for_status()
            (await http.post(f"/v1/flows/ingest-{k}/publish")).raise_for_status()
        queue = list(reversed(load.batches))

        async def sender() -> None:
            while queue:
                body = queue.pop()
                while True:
                    began = time.perf_counter()
                    response = await http.post("/v1/events", content=body)
                    run.post_ms.append((time.perf_counter() - began) * 1000)
                    if response.status_code == 202:
                        break
                    # 503: stored but not routed (or no connection free): the same batch again.
                    print(f"POST: {response.status_code} {response.text[:200]}", file=sys.stderr)
                    run.resent += 1
                    await asyncio.sleep(0.5)

        cpu, own, machine = stack.cpu_seconds(), time.process_time(), machine_busy_seconds()
        began = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(run.senders)))
        run.sent_seconds = time.perf_counter() - began
        deadline = began + wait_s
        while True:
            run.stored, run.routed, run.journeys = await counts(url)
            if run.routed >= load.events or time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.2)
        run.seconds = time.perf_counter() - began
        after = stack.cpu_seconds()
        run.cpu = {name: after[name] - cpu.get(name, 0.0) for name in after}
        run.cpu["bench"] = time.process_time() - own  # this process: the senders
        run.cpu["machine"] = machine_busy_seconds() - machine  # every process, ours and others


def bench(database: str, args: argparse.Namespace, load: Load) -> Run:
    run = Run(database, load.events, len(load.batches), args.senders)
    run.expected_journeys = len(load.journeys)
    with tempfile.TemporaryDirectory(prefix="flowline-ingest-") as tmp, contextlib.ExitStack() as stack:
        if database == "postgres":
            from tests.databases import postgres_database

            # A schema of its own in the `test` database (FLOWLINE_TEST_POSTGRES), dropped at the end.
            url = stack.enter_context(postgres_database())
        else:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'flowline.db'}"
        print(f"database {database}; starting `cli.py run`", flush=True)
        running = stack.enter_context(flowline_run(Path(tmp), url))
        try:
            asyncio.run(measure(running, url, load, run, args.timeout))
        finally:
            if args.log:
                log = Path(f"{args.log}.{database}")
                stack.callback(lambda: log.write_bytes(running.log.read_bytes()))
    return run


def report(runs: list[Run]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    table = Table(title="POST /v1/events: events stored and routed per second")
    columns = ["database", "events", "batches", "senders", "seconds", "events/s", "sent in s"]
    columns += ["POST p50 ms", "POST p99 ms", "resent", "stored", "routed", "journeys", "expected"]
    for column in columns:
        table.add_column(column, justify="right", no_wrap=True)
    for run in runs:
        post = sorted(run.post_ms)
        table.add_row(
            run.database,
            str(run.events),
            str(run.batches),
            str(run.senders),
            f"{run.seconds:.1f}",
            f"{run.per_s:.0f}",
            f"{run.sent_seconds:.1f}",
            f"{post[len(post) // 2]:.0f}" if post else "-",
            f"{post[min(len(post) - 1, int(len(post) * 0.99))]:.0f}" if post else "-",
            str(run.resent),
            str(run.stored),
            str(run.routed),
            str(run.journeys),
            str(run.expected_journeys),
        )
    console.print(table)
    title = "CPU ms per 1,000 events / share of one core, first send to all routed (2 cores; machine: all"
    title += " processes, PostgreSQL's and other work included)"
    table = Table(title=title)
    names = [*sorted({name for run in runs for name in run.cpu} - {"machine"}), "machine"]
    for column in ("database", *names):
        table.add_column(column, justify="right")
    for run in runs:
        cells = [f"{run.cpu[n] / run.events * 1e6:.0f} / {run.cpu[n] / run.seconds:.0%}" for n in names]
        table.add_row(run.database, *cells)
    console.print(table)
    for run in runs:
        if not run.correct:
            console.print(f"[red]{run.database}: stored, routed or journeys differ from what was sent[/]")


def main(args: argparse.Namespace) -> int:
    load = make_load(args.events, args.batch, args.profiles, args.seed, args.trigger_share)
    runs = [bench(database, args, load) for database in args.database]
    report(runs)
    print(" ".join(f"{run.database}_events_per_s={run.per_s:.0f}" for run in runs))
    return 0 if all(run.correct for run in runs) else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database", choices=["sqlite", "postgres"], nargs="+", default=["sqlite", "postgres"]
    )
    parser.add_argument("--events", type=int, default=200_000, help="events to send (default 200000)")
    parser.add_argument("--batch", type=int, default=500, help="events per POST (default 500)")
    parser.add_argument("--senders", type=int, default=4, help="concurrent senders (default 4)")
    parser.add_argument("--profiles", type=int, default=20_000, help="distinct profiles (default 20000)")
    parser.add_argument(
        "--trigger-share", type=float, default=TRIGGER_SHARE, help="share of events that start journeys"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the load")
    parser.add_argument("--timeout", type=float, default=900, help="s to wait for every event to be routed")
    parser.add_argument("--log", help="copy the output of `cli.py run` to this file (.<database> added)")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main(parse_args()))
