"""What one journey costs, against a bare Temporal workflow: a cost model measured with counters.

    .venv/bin/python bench/costs.py [--journeys N] [--database sqlite postgres]

The bench starts, as separate processes so /proc accounts each one's CPU:
  - the Temporal dev server (.venv/bin/temporal, never downloaded);
  - the API and the worker (bench/costs_proc.py: the product's entry points with SQLAlchemy
    statement and transaction counters attached; payloads encrypted as in `make run`);
  - a bare worker for the baseline (bench/baseline_workflow.py: one no-op activity).
This process is the driver: it POSTs one event per profile (the flow of bench/journeys.py:
event -> in_app send -> exit) or calls start_workflow (baseline), C at a time, waits for every
result, then reads each workflow's history through the client (events by type, commands, bytes).

Per journey, averaged over N after a warm-up: CPU ms of each process (utime + stime from
/proc/<pid>/stat before and after; PostgreSQL: the backends serving the bench's connections,
found by application_name), SQL statements and transactions by scope (the activity or process that
ran them) and by verb and table, Temporal commands and history events, bytes of workflow input and
of history. The last line: ``journey_cpu_ms=<n> baseline_cpu_ms=<n> ratio=<r>`` (per database;
ratio = baseline / journey, all processes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))

from bench.journeys import EVENT, FLOW, FLOW_ID  # noqa: E402

# The bare workflow with one of the journey's items each (bench/baseline_workflow.py's CostVariant):
# what that item alone costs Temporal, measured. pad: bytes more of workflow and activity input.
VARIANTS: dict[str, dict[str, Any]] = {
    "bare + 5 search attributes at start": {"attributes": True},
    "bare + 2 patch markers": {"patches": 2},
    "bare + 1.1 KB input": {"pad": 1100},
    "bare + activity heartbeat": {"heartbeat": True},
    "bare + all four": {"attributes": True, "patches": 2, "pad": 1100, "heartbeat": True},
}
JOURNEY_QUEUE = "bench-costs-journeys"
BASELINE_QUEUE = "bench-costs-baseline"
TICK = os.sysconf("SC_CLK_TCK")
# History event types a workflow task's commands produce (one command each).
COMMAND_EVENTS = {
    "ACTIVITY_TASK_SCHEDULED",
    "TIMER_STARTED",
    "MARKER_RECORDED",
    "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES",
    "WORKFLOW_PROPERTIES_MODIFIED",
    "WORKFLOW_EXECUTION_COMPLETED",
    "WORKFLOW_EXECUTION_FAILED",
    "WORKFLOW_EXECUTION_CONTINUED_AS_NEW",
    "START_CHILD_WORKFLOW_EXECUTION_INITIATED",
    "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
    "ACTIVITY_TASK_CANCEL_REQUESTED",
    "TIMER_CANCELED",
}


# ---------------------------------------------------------------- counters


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system, every thread) of one process; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of one process by thread name (digits dropped: ``tokio-runtime-w``, ``python``,
    ``asyncio_``): the Python event loop against Temporal's Rust core and the database threads."""
    found: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").glob("[0-9]*"):
        with contextlib.suppress(OSError, IndexError):
            name = (task / "comm").read_text().strip().rstrip("0123456789-_ ") or "?"
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            found[name] = found.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / TICK
    return found


# Where a py-spy sample's time goes: the first of these found walking from the leaf frame up.
LIBRARIES = [
    ("SQLAlchemy", ("/sqlalchemy/",)),
    ("database driver", ("/aiosqlite/", "/sqlite3/", "/psycopg/", "/psycopg_pool/")),
    ("encryption (payload codec)", ("/cryptography/", "payload_codec")),
    ("Temporal SDK and protobuf", ("/temporalio/", "/google/protobuf/")),
    ("pydantic", ("/pydantic/", "/pydantic_core/")),
    ("HTTP server (uvicorn, Starlette, FastAPI)", ("/uvicorn/", "/starlette/", "/fastapi/", "/h11/")),
    ("httpx", ("/httpx/", "/httpcore/")),
    ("Liquid templates", ("/liquid/",)),
    ("asyncio event loop", ("/asyncio/",)),
    ("Flowline code", (str(ROOT) + "/",)),
]


# Leaf frames where a thread waits rather than works (py-spy's --nonblocking cannot tell idle
# threads apart): the event loop's epoll, a thread pool's and aiosqlite's queue.get, lock waits.
IDLE_LEAVES = ("selectors.py:", "futures/thread.py:81)", "aiosqlite/core.py:59)", "threading.py:")


def profile_summary(path: Path) -> Counter[str]:
    """Samples of a py-spy raw file (``frame;frame;...;leaf count`` per line) by library; waiting
    samples (IDLE_LEAVES, or no Python frame) under ``idle``."""
    found: Counter[str] = Counter()
    if not path.exists():
        return found
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not frames[-1].strip() or any(mark in frames[-1] for mark in IDLE_LEAVES):
            found["idle"] += int(count)
            continue
        library = next(
            (
                name
                for frame in reversed(frames)
                for name, marks in LIBRARIES
                if any(mark in frame for mark in marks)
            ),
            None,
        )
        if library is None:  # named by the leaf frame's module: "other: json/encoder.py"
            leaf = frames[-1].rpartition("(")[2].split(":")[0]
            library = "other: " + "/".join(leaf.split("/")[-2:])
        found[library] += int(count)
    return found


def children() -> list[int]:
    """Pids of this process's live children (the dev server, when only it has been started)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                found.append(int(stat.parent.name))
    return found


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Proc:
    """A process of the bench's stack whose SQL counters can be read (bench/costs_proc.py)."""

    role: str
    process: subprocess.Popen[bytes]
    out: Path

    def counters(self) -> dict[str, Any]:
        before = self._read().get("snapshots", 0)
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            found = self._read()
            if found.get("snapshots", 0) > before:
                return found
            time.sleep(0.02)
        raise RuntimeError(f"{self.role} wrote no counters")

    def _read(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            found: dict[str, Any] = json.loads(self.out.read_text())
            return found
        return {}


def server_counters(url: str) -> Counter[str]:
    """The dev server's Prometheus counters of gRPC requests (``service <operation>``) and of
    persistence requests (``persistence <operation>``), summed over their other labels."""
    import re
    import urllib.request

    found: Counter[str] = Counter()
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    for line in text.splitlines():
        match = re.match(r'(service|persistence)_requests\{.*operation="([^"]+)".*\} (\S+)$', line)
        if match:
            found[f"{match.group(1)} {match.group(2)}"] += int(float(match.group(3)))
    return found


@dataclass
class Snapshot:
    cpu: dict[str, float]
    threads: dict[str, float]
    statements: Counter[str]
    transactions: Counter[str]
    shapes: Counter[str]
    server: Counter[str]


@dataclass
class Phase:
    mode: str
    n: int
    seconds: float
    cpu: dict[str, float]  # seconds per process over the phase
    threads: dict[str, float]  # "process: thread name" -> seconds over the phase
    statements: Counter[str]  # "scope|verb|table" -> count over the phase
    transactions: Counter[str]  # "scope|commit" -> count over the phase
    shapes: Counter[str]  # "scope|commit|INSERT events, ..." -> count over the phase
    server: Counter[str]  # the dev server's request counters over the phase
    history: HistoryStats
    profiles: dict[str, Counter[str]]  # process -> py-spy samples by library (--py-spy)


@dataclass
class HistoryStats:
    """Per workflow, averaged over the histories read."""

    workflows: int = 0
    events: Counter[str] = field(default_factory=Counter)
    commands: Counter[str] = field(default_factory=Counter)
    activities: Counter[str] = field(default_factory=Counter)
    markers: Counter[str] = field(default_factory=Counter)
    upserts: Counter[str] = field(default_factory=Counter)  # search attribute -> times upserted
    search_attributes_at_start: int = 0
    upserted_attributes: int = 0
    input_bytes: int = 0
    history_bytes: int = 0
    activity_input_bytes: int = 0
    workflow_tasks: int = 0


def summarize(histories: list[Any]) -> HistoryStats:
    """Events by type, commands, activities, markers and bytes, summed over ``histories``."""
    from temporalio.api.enums.v1 import EventType

    stats = HistoryStats(workflows=len(histories))
    for history in histories:
        for event in history.events:
            kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
            stats.events[kind] += 1
            stats.history_bytes += event.ByteSize()
            if kind in COMMAND_EVENTS:
                stats.commands[kind] += 1
            if kind == "WORKFLOW_TASK_COMPLETED":
                stats.workflow_tasks += 1
            if kind == "WORKFLOW_EXECUTION_STARTED":
                started = event.workflow_execution_started_event_attributes
                stats.input_bytes += sum(p.ByteSize() for p in started.input.payloads)
                stats.search_attributes_at_start += len(started.search_attributes.indexed_fields)
            elif kind == "ACTIVITY_TASK_SCHEDULED":
                scheduled = event.activity_task_scheduled_event_attributes
                stats.activities[scheduled.activity_type.name] += 1
                stats.activity_input_bytes += sum(p.ByteSize() for p in scheduled.input.payloads)
            elif kind == "MARKER_RECORDED":
                marker = event.marker_recorded_event_attributes
                details = marker.details.get("patch-data")
                name = marker.marker_name
                if details is not None and details.payloads:
                    name += " " + json.loads(details.payloads[0].data).get("id", "?")
                stats.markers[name] += 1
            elif kind == "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES":
                upsert = event.upsert_workflow_search_attributes_event_attributes
                stats.upserted_attributes += len(upsert.search_attributes.indexed_fields)
                stats.upserts.update(upsert.search_attributes.indexed_fields.keys())
    return stats


# ---------------------------------------------------------------- the stack


@dataclass
class Stack:
    client: Any
    journey_client: Any  # with the payload key, to read the journeys' (encrypted) results
    api: str
    key: str
    procs: dict[str, Proc]
    temporal_pid: int
    postgres_app: str | None  # application_name of the bench's PostgreSQL connections
    database_url: str
    metrics_url: str
    tmp: Path
    py_spy: str | None

    def postgres_pids(self) -> list[int]:
        if self.postgres_app is None:
            return []
        import psycopg

        from tests.databases import POSTGRES_DSN

        with psycopg.connect(POSTGRES_DSN) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (self.postgres_app,)
            ).fetchall()
        return [int(row[0]) for row in rows]

    def snapshot(self) -> Snapshot:
        cpu = {role: cpu_of(proc.process.pid) for role, proc in self.procs.items()}
        cpu["temporal"] = cpu_of(self.temporal_pid)
        # Backends that exit during a phase lose their CPU; the pools keep theirs open.
        cpu["postgres"] = sum(cpu_of(pid) for pid in self.postgres_pids())
        cpu["driver"] = time.process_time()
        threads = {
            f"{role}: {name}": seconds
            for role, proc in self.procs.items()
            for name, seconds in thread_cpu(proc.process.pid).items()
        }
        statements: Counter[str] = Counter()
        transactions: Counter[str] = Counter()
        shapes: Counter[str] = Counter()
        for proc in self.procs.values():
            found = proc.counters()
            statements.update(found["statements"])
            transactions.update(found["transactions"])
            shapes.update(found["shapes"])
        return Snapshot(cpu, threads, statements, transactions, shapes, server_counters(self.metrics_url))


def spy_on(py_spy: str, pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` without pausing it until SIGINT, then writing ``out`` (raw)."""
    command = [py_spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(out)]
    command += ["--nonblocking", "--full-filenames", "--rate", "200"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def spawn(role: str, env: dict[str, str], tmp: Path) -> Proc:
    out = tmp / f"{role}.json"
    log = (tmp / f"{role}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "costs_proc.py"), role],
        cwd=ROOT,
        env={**env, "COSTS_OUT": str(out)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return Proc(role, process, out)


@contextlib.contextmanager
def database(kind: str, tmp: Path, app_name: str) -> Iterator[str]:
    if kind == "postgres":
        from tests.databases import postgres_database

        with postgres_database() as url:
            yield f"{url}&application_name={app_name}"
    else:
        from flowline.store.migrate import upgrade

        url = f"sqlite+aiosqlite:///{tmp / 'flowline.db'}"
        upgrade(url)
        yield url


@contextlib.asynccontextmanager
async def stack(kind: str, temporal_cli: str, tmp: Path, py_spy: str | None) -> Any:
    import httpx
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from flowline.store.database import Store
    from flowline.store.workspaces import create_api_key, create_workspace
    from launch.payload_codec import data_converter, new_key_setting
    from tests.servers import free_port
    from workflows import search_attributes as sa

    metrics_port = free_port()
    app_name = f"flowline-bench-costs-{uuid.uuid4().hex[:8]}"
    with database(kind, tmp, app_name) as url:
        store = Store(url)
        async with store.begin() as conn:
            await create_workspace(conn, "bench", "Benchmark")
            key = await create_api_key(conn, "bench", "bench")
        await store.dispose()
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_cli,
            search_attributes=[sa.WORKSPACE_ID, sa.FLOW_ID, sa.FLOW_VERSION, sa.PROFILE_ID, sa.STEP_ID],
            ui=False,
            data_converter=pydantic_data_converter,
            dev_server_log_level="error",
            dev_server_extra_args=["--metrics-port", str(metrics_port)],
        )
        temporal_pids = children()
        api_port = free_port()
        proc_env = dict(os.environ)
        proc_env.update(
            FLOWLINE_DATABASE_URL=url,
            FLOWLINE_TEMPORAL_ADDRESS=env.client.service_client.config.target_host,
            FLOWLINE_TASK_QUEUE=JOURNEY_QUEUE,
            FLOWLINE_API_PORT=str(api_port),
            FLOWLINE_PAYLOAD_KEYS=new_key_setting("bench-costs"),  # encrypted, as `make run`
            FLOWLINE_ALLOW_PRIVATE_OUTBOUND="true",
            # Background loops off, so the counters hold journeys only.
            FLOWLINE_EXPORT_BATCHER="false",
            FLOWLINE_SWEEP_SECONDS="0",
        )
        procs = {
            "api": spawn("api", proc_env, tmp),
            "worker": spawn("worker", proc_env, tmp),
            "baseline worker": spawn("baseline", {**proc_env, "FLOWLINE_TASK_QUEUE": BASELINE_QUEUE}, tmp),
        }
        api = f"http://127.0.0.1:{api_port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                for proc in procs.values():
                    if proc.process.poll() is not None:
                        log = (tmp / f"{proc.role.split()[0]}.log").read_text()
                        raise RuntimeError(f"{proc.role} exited:\n{log}")
                with contextlib.suppress(httpx.HTTPError):
                    async with httpx.AsyncClient(timeout=2) as probe:
                        if (await probe.get(f"{api}/readyz")).status_code == 200:
                            break
                if time.monotonic() > deadline:
                    raise RuntimeError("the API was not ready in 120 s")
                await asyncio.sleep(0.3)
            journey_client = await Client.connect(
                proc_env["FLOWLINE_TEMPORAL_ADDRESS"],
                data_converter=data_converter(proc_env["FLOWLINE_PAYLOAD_KEYS"]),
            )
            yield Stack(
                env.client,
                journey_client,
                api,
                key,
                procs,
                temporal_pids[0],
                app_name if kind == "postgres" else None,
                url,
                f"http://127.0.0.1:{metrics_port}/metrics",
                tmp,
                py_spy,
            )
        finally:
            for proc in procs.values():
                proc.process.send_signal(signal.SIGTERM)
            for proc in procs.values():
                try:
                    proc.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.process.kill()
            await env.shutdown()


# ---------------------------------------------------------------- driving

Submit = Callable[[int], Coroutine[Any, Any, str]]  # starts item i, returns its workflow id
Wait = Callable[[str], Coroutine[Any, Any, Any]]  # until that workflow has ended


async def drive(
    n: int,
    concurrency: int,
    submit: Submit,
    wait: Wait,
) -> list[str]:
    """Start ``n`` workflows, at most ``concurrency`` starts in flight; wait for every result."""
    ids: list[str] = []
    waits: list[asyncio.Task[Any]] = []
    counter = iter(range(n))

    async def submitter() -> None:
        for i in counter:
            wid = await submit(i)
            ids.append(wid)
            waits.append(asyncio.create_task(wait(wid)))

    await asyncio.gather(*(submitter() for _ in range(concurrency)))
    await asyncio.gather(*waits)
    return ids


async def measure(
    s: Stack,
    mode: str,
    n: int,
    warmup: int,
    concurrency: int,
    sample: int,
    make: Callable[
        [str], tuple[Callable[[int], Coroutine[Any, Any, str]], Callable[[str], Coroutine[Any, Any, Any]]]
    ],
) -> Phase:
    await drive(warmup, concurrency, *make(f"warm-{uuid.uuid4().hex[:6]}"))
    await asyncio.sleep(1)  # let the warm-up's last bookkeeping land outside the measured window
    spies = []
    if s.py_spy:
        for role, proc in s.procs.items():
            out = s.tmp / f"{mode}-{role.replace(' ', '-')}.spy"
            spies.append(spy_on(s.py_spy, proc.process.pid, out))
        await asyncio.sleep(1)  # py-spy attaches
    before = s.snapshot()
    began = time.perf_counter()
    ids = await drive(n, concurrency, *make(uuid.uuid4().hex[:6]))
    seconds = time.perf_counter() - began
    await asyncio.sleep(1)
    after = s.snapshot()
    for spy in spies:
        spy.send_signal(signal.SIGINT)
    for spy in spies:
        spy.wait(timeout=60)
    profiles = {role: profile_summary(s.tmp / f"{mode}-{role.replace(' ', '-')}.spy") for role in s.procs}
    histories = [await s.client.get_workflow_handle(wid).fetch_history() for wid in ids[:sample]]
    return Phase(
        mode,
        n,
        seconds,
        {k: after.cpu[k] - before.cpu[k] for k in after.cpu},
        {k: v - before.threads.get(k, 0.0) for k, v in after.threads.items()},
        after.statements - before.statements,
        after.transactions - before.transactions,
        after.shapes - before.shapes,
        after.server - before.server,
        summarize(histories),
        profiles,
    )


async def run_database(kind: str, args: argparse.Namespace, console: Any, with_variants: bool) -> list[Phase]:
    import httpx
    from temporalio.common import SearchAttributePair, TypedSearchAttributes

    from bench.baseline_workflow import BaselineWorkflow, CostVariant, CostVariantWorkflow
    from workflows import search_attributes as sa

    with tempfile.TemporaryDirectory(prefix="flowline-costs-") as tmp:
        async with stack(kind, args.temporal, Path(tmp), args.py_spy) as s:
            client = s.client
            http = httpx.AsyncClient(base_url=s.api, headers={"Authorization": f"Bearer {s.key}"}, timeout=60)
            async with http:
                (await http.put(f"/v1/flows/{FLOW_ID}", json=FLOW)).raise_for_status()
                (await http.post(f"/v1/flows/{FLOW_ID}/publish")).raise_for_status()

                def baseline(tag: str) -> Any:
                    async def submit(i: int) -> str:
                        wid = f"baseline-{tag}-{i}"
                        await client.start_workflow(
                            BaselineWorkflow.run, str(i), id=wid, task_queue=BASELINE_QUEUE
                        )
                        return wid

                    async def wait(wid: str) -> Any:
                        return await client.get_workflow_handle(wid).result()

                    return submit, wait

                def journeys(tag: str) -> Any:
                    async def submit(i: int) -> str:
                        event = {
                            "id": f"ev-{tag}-{i}",
                            "profile_id": f"p-{tag}-{i}",
                            "name": EVENT,
                            "properties": {"plan": "pro"},
                        }
                        response = await http.post("/v1/events", json=event)
                        if response.status_code != 202 or len(response.json()["journeys"]) != 1:
                            raise RuntimeError(f"POST /v1/events: {response.status_code} {response.text}")
                        jid: str = response.json()["journeys"][0]
                        return jid

                    async def wait(jid: str) -> Any:
                        state = await s.journey_client.get_workflow_handle(jid).result()
                        if state.get("status") != "completed":
                            raise RuntimeError(f"journey {jid} ended {state.get('status')!r}")

                    return submit, wait

                def variant(options: dict[str, Any]) -> Callable[[str], tuple[Submit, Wait]]:
                    def make(tag: str) -> tuple[Submit, Wait]:
                        async def submit(i: int) -> str:
                            wid = f"variant-{tag}-{i}"
                            pairs: list[SearchAttributePair[Any]] = [
                                SearchAttributePair(sa.WORKSPACE_ID, "bench"),
                                SearchAttributePair(sa.FLOW_ID, FLOW_ID),
                                SearchAttributePair(sa.FLOW_VERSION, 1),
                                SearchAttributePair(sa.PROFILE_ID, f"p-{tag}-{i}"),
                                SearchAttributePair(sa.STEP_ID, "hello"),
                            ]
                            await client.start_workflow(
                                CostVariantWorkflow.run,
                                CostVariant(
                                    str(i),
                                    pad=secrets.token_urlsafe(options.get("pad", 0) * 3 // 4),
                                    patches=options.get("patches", 0),
                                    heartbeat=options.get("heartbeat", False),
                                ),
                                id=wid,
                                task_queue=BASELINE_QUEUE,
                                search_attributes=TypedSearchAttributes(pairs)
                                if options.get("attributes")
                                else None,
                            )
                            return wid

                        async def wait(wid: str) -> Any:
                            return await client.get_workflow_handle(wid).result()

                        return submit, wait

                    return make

                phases = []
                modes: list[tuple[str, Callable[[str], tuple[Submit, Wait]]]] = [
                    ("baseline", baseline),
                    ("journey", journeys),
                ]
                if with_variants:
                    modes += [(name, variant(options)) for name, options in VARIANTS.items()]
                for mode, make in modes:
                    console.print(f"[bold]{kind}[/] {mode}: warm-up {args.warmup}, then N={args.journeys}")
                    phases.append(
                        await measure(
                            s, mode, args.journeys, args.warmup, args.concurrency, args.sample, make
                        )
                    )
    return phases


# ---------------------------------------------------------------- report


def per(value: float, n: int) -> str:
    return f"{value / n:.2f}" if value else "0"


def report(kind: str, phases: list[Phase], console: Any) -> tuple[float, float]:
    from rich.table import Table

    base, journey = phases[:2]
    variants, phases = phases[2:], phases[:2]
    processes = ["api", "worker", "baseline worker", "temporal", "postgres", "driver"]
    table = Table(title=f"{kind}: CPU ms per workflow (N={journey.n}), by process")
    for column in ("process", "baseline", "journey", "journey - baseline"):
        table.add_column(column, justify="left" if column == "process" else "right")
    totals = [0.0, 0.0]
    for name in processes:
        b, j = (p.cpu.get(name, 0.0) * 1000 / p.n for p in phases)
        if name != "driver":
            totals[0] += b
            totals[1] += j
        table.add_row(name, f"{b:.2f}", f"{j:.2f}", f"{j - b:+.2f}")
    table.add_row(
        "[bold]all but driver[/]", f"{totals[0]:.2f}", f"{totals[1]:.2f}", f"{totals[1] - totals[0]:+.2f}"
    )
    table.add_row("wall s per phase", f"{base.seconds:.1f}", f"{journey.seconds:.1f}", "")
    for name in sorted(set(base.threads) | set(journey.threads)):
        b, j = (p.threads.get(name, 0.0) * 1000 / p.n for p in phases)
        if max(b, j) >= 0.1:
            table.add_row(f"  thread {name}", f"{b:.2f}", f"{j:.2f}", f"{j - b:+.2f}")
    console.print(table)

    for phase in phases:
        for role, samples in phase.profiles.items():
            total = sum(v for k, v in samples.items() if k != "idle")
            if total < 50:
                continue
            table = Table(
                title=f"{kind} {phase.mode}: py-spy samples of {role} by library "
                f"({total} busy, {samples['idle']} idle left out)"
            )
            for column in ("library (leaf-most frame)", "share", "CPU ms per workflow"):
                table.add_column(column, justify="left" if column.startswith("library") else "right")
            # Shares of the Python threads' CPU (py-spy does not see the Rust core's threads).
            cpu_ms = phase.threads.get(f"{role}: python", 0.0) * 1000 / phase.n
            for name, count in samples.most_common():
                if name == "idle" or count / total < 0.01:
                    continue
                table.add_row(name, f"{count / total:.0%}", f"{cpu_ms * count / total:.2f}")
            console.print(table)

    table = Table(title=f"{kind}: Temporal per workflow (histories of {journey.history.workflows})")
    for column in ("item", "baseline", "journey"):
        table.add_column(column, justify="left" if column == "item" else "right")
    hb, hj = base.history, journey.history

    def row(label: str, get: Callable[[HistoryStats], float]) -> None:
        table.add_row(label, per(get(hb), max(hb.workflows, 1)), per(get(hj), max(hj.workflows, 1)))

    row("history events", lambda h: sum(h.events.values()))
    row("commands", lambda h: sum(h.commands.values()))
    row("workflow tasks", lambda h: h.workflow_tasks)
    row("bytes of workflow input", lambda h: h.input_bytes)
    row("bytes of activity inputs", lambda h: h.activity_input_bytes)
    row("bytes of history", lambda h: h.history_bytes)
    row("search attributes at start", lambda h: h.search_attributes_at_start)
    row("search attributes upserted", lambda h: h.upserted_attributes)
    for kind_ in sorted(set(hb.events) | set(hj.events)):
        row(f"  event {kind_}", lambda h, k=kind_: h.events[k])  # type: ignore[misc]
    for name in sorted(set(hb.activities) | set(hj.activities)):
        row(f"  activity {name}", lambda h, k=name: h.activities[k])  # type: ignore[misc]
    for name in sorted(set(hb.markers) | set(hj.markers)):
        row(f"  marker {name}", lambda h, k=name: h.markers[k])  # type: ignore[misc]
    for name in sorted(set(hb.upserts) | set(hj.upserts)):
        row(f"  upsert of {name}", lambda h, k=name: h.upserts[k])  # type: ignore[misc]
    console.print(table)

    table = Table(title=f"{kind}: the Temporal server's request counters per workflow (its /metrics)")
    for column in ("requests", "baseline", "journey"):
        table.add_column(column, justify="left" if column == "requests" else "right")
    for name in sorted(set(base.server) | set(journey.server)):
        b, j = base.server[name] / base.n, journey.server[name] / journey.n
        if max(b, j) >= 0.05:
            table.add_row(name, f"{b:.2f}", f"{j:.2f}")
    for prefix in ("service", "persistence"):
        b, j = (sum(v for k, v in p.server.items() if k.startswith(prefix)) / p.n for p in phases)
        table.add_row(f"[bold]{prefix}, all[/]", f"{b:.2f}", f"{j:.2f}")
    console.print(table)

    table = Table(title=f"{kind}: SQL per journey, by who runs it (statements / transactions)")
    for column in ("scope", "verb", "table", "statements"):
        table.add_column(column, justify="right" if column == "statements" else "left")
    for key, count in sorted(journey.statements.items()):
        scope, verb, name = key.split("|")
        table.add_row(scope, verb, name, per(count, journey.n))
    scopes: Counter[str] = Counter()
    for key, count in journey.statements.items():
        scopes[key.split("|")[0]] += count
    for scope, count in sorted(scopes.items()):
        commits = journey.transactions.get(f"{scope}|commit", 0)
        rollbacks = journey.transactions.get(f"{scope}|rollback", 0)
        table.add_row(
            f"[bold]{scope}[/]",
            "all",
            "",
            f"{per(count, journey.n)} ({per(commits, journey.n)} commits, "
            f"{per(rollbacks, journey.n)} rollbacks)",
        )
    total_commits = sum(v for k, v in journey.transactions.items() if k.endswith("|commit"))
    table.add_row(
        "[bold]total[/]",
        "",
        "",
        f"{per(sum(journey.statements.values()), journey.n)} ({per(total_commits, journey.n)} commits)",
    )
    console.print(table)

    table = Table(title=f"{kind}: transactions per journey, by the statements they run (in order)")
    for column in ("scope", "end", "statements", "per journey"):
        table.add_column(column, justify="right" if column == "per journey" else "left")
    for key, count in sorted(journey.shapes.items(), key=lambda item: -item[1]):
        if count / journey.n >= 0.05:
            table.add_row(*key.split("|"), per(count, journey.n))
    console.print(table)

    if variants:
        table = Table(title=f"{kind}: what each of the journey's Temporal items costs a bare workflow")
        columns = ("workflow", "temporal CPU ms", "worker CPU ms", "history events", "history bytes")
        for column in (*columns, "persistence requests", "service requests"):
            table.add_column(column, justify="left" if column == "workflow" else "right")
        for phase in (base, *variants, journey):
            worker = phase.cpu["worker" if phase.mode == "journey" else "baseline worker"]
            h = phase.history
            table.add_row(
                phase.mode,
                f"{phase.cpu['temporal'] * 1000 / phase.n:.2f}",
                f"{worker * 1000 / phase.n:.2f}",
                per(sum(h.events.values()), h.workflows),
                per(h.history_bytes, h.workflows),
                per(sum(v for k, v in phase.server.items() if k.startswith("persistence")), phase.n),
                per(sum(v for k, v in phase.server.items() if k.startswith("service")), phase.n),
            )
        console.print(table)
    return totals[1], totals[0]


async def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(width=160)
    console.print(f"load average {load_average()}, {os.cpu_count()} cores")
    figures = []
    for i, kind in enumerate(args.database):
        phases = await run_database(kind, args, console, with_variants=i == 0 and args.variants)
        journey_ms, baseline_ms = report(kind, phases, console)
        figures.append(
            f"{kind}_journey_cpu_ms={journey_ms:.1f} {kind}_baseline_cpu_ms={baseline_ms:.1f} "
            f"{kind}_ratio={baseline_ms / journey_ms:.2f}"
        )
    console.print(f"load average {load_average()}")
    print(" ".join(figures))
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--journeys", type=int, default=500, help="workflows per measured phase (default 500)"
    )
    parser.add_argument(
        "--warmup", type=int, default=50, help="uncounted workflows before each phase (default 50)"
    )
    parser.add_argument("--concurrency", type=int, default=20, help="starts in flight (default 20)")
    parser.add_argument("--sample", type=int, default=100, help="histories read per phase (default 100)")
    parser.add_argument(
        "--database", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"]
    )
    parser.add_argument(
        "--variants",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="on the first database, also bare workflows with one journey item each (default on)",
    )
    parser.add_argument(
        "--py-spy",
        help="a py-spy executable (not in the lock: e.g. pip install py-spy into a throwaway venv); "
        "given, the API's and the workers' samples during each phase are summed by library",
    )
    parser.add_argument(
        "--temporal",
        default=str(ROOT / ".venv" / "bin" / "temporal"),
        help="the Temporal CLI that runs the dev server (default .venv/bin/temporal)",
    )
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
