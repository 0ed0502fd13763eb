"""Messages sent per second through the whole path, against bare Temporal activities sending the same.

    .venv/bin/python bench/sends.py [--messages N] [--concurrency C] [--paths email http]

Two paths, each measured the same way, on one Temporal dev server (from .venv/bin/temporal, on
disk with WAL, as bench/fanout.py) and a fresh SQLite database in a temp dir (``--database
postgres``: a fresh schema in the local PostgreSQL):

(a) email: a published flow (event ``bench_email`` -> ``send`` step, channel email, subject, text
    and HTML with Liquid -> exit); the workspace's channel settings point to a real SMTP server
    (aiosmtpd) on 127.0.0.1. Journeys are started by ``POST /v1/events`` through the real API
    in-process (one event per person, at most C requests in flight) and run by
    ``worker.running_worker``: ledger row, rules, rendering, ``SmtpProvider.send``.
(b) http: the same with a ``webhook`` step to a local HTTP sink (``deliver_webhook``).

Baseline of each: a bare workflow with one activity doing the same send (``provider_for`` ->
``SmtpProvider.send`` of a message of the same size; or the same signed httpx POST), started with
``client.start_workflow`` at the same concurrency on its own task queue with the same worker
options; half before the journeys and half after (the server's growing state and the machine's
other load weigh on both alike).

Each run is timed from the first start until every workflow result is in and every message has
arrived at the receiver (a process of its own: bench/sinks.py), which also counts duplicates.
The last line is machine-readable (both paths together):
``sends_per_s=<n> baseline_per_s=<n> ratio=<r>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    # Run as a script: make the repo root importable (not at import: the sandbox re-imports).
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORKSPACE = "bench"
BASELINE_QUEUE = "bench-sends-baseline"
JOURNEY_QUEUE = "bench-sends-journeys"
FROM_ADDRESS = "Flowline <hello@flowline.test>"
PUBLIC_URL = "http://127.0.0.1:8000"  # where tracking links point (the default of Settings)
SUBJECT = "Welcome, {{ profile.first_name }}"
TEXT = "Hello {{ profile.first_name }}, thanks for {{ event.name }} on the {{ event.plan }} plan."
HTML = (
    "<p>Hello <b>{{ profile.first_name }}</b>, thanks for {{ event.name }} on the {{ event.plan }} plan.</p>"
)
# Results awaited at once (each a long poll): the dev server refuses more than 1,200 per namespace
# ("namespace concurrent poller limit exceeded"), and 2,000 journeys can all be in flight.
WAITERS = asyncio.Semaphore(400)
WEBHOOK_DATA = {"greeting": "Hello {{ profile.first_name }}", "plan": "{{ event.plan }}"}


def flow(path: str, sink_url: str) -> dict[str, Any]:
    """The published flow of a path: event ``bench_<path>`` -> one send -> exit."""
    step: dict[str, Any]
    if path == "email":
        content = {"subject": SUBJECT, "text": TEXT, "html": HTML}
        step = {"id": "send", "type": "send", "channel": "email", "content": content}
    else:
        step = {"id": "send", "type": "webhook", "url": sink_url, "data": WEBHOOK_DATA}
    trigger = {"type": "event", "event": f"bench_{path}"}
    steps = [{**step, "next": "done"}, {"id": "done", "type": "exit"}]
    return {"id": f"bench-{path}", "name": f"Sends benchmark ({path})", "trigger": trigger, "steps": steps}


def email_available() -> bool:
    """Whether the registry has an email provider yet (another branch writes it)."""
    import httpx

    from flowline.channels.config import ChannelSettings, SmtpSettings
    from flowline.channels.registry import provider_for

    smtp = SmtpSettings(host="127.0.0.1", port=25, from_address=FROM_ADDRESS)
    return provider_for("email", ChannelSettings(email=smtp), httpx.AsyncClient()) is not None


# ---------------------------------------------------------------- measuring


@dataclass
class Measured:
    path: str
    mode: str  # journeys | baseline
    run: Any  # bench.journeys.Run
    sink_cpu_seconds: float

    def __add__(self, other: Measured) -> Measured:
        a, b = self.run, other.run
        run = replace(
            a,
            n=a.n + b.n,
            seconds=a.seconds + b.seconds,
            submit_seconds=a.submit_seconds + b.submit_seconds,
            cpu_seconds=a.cpu_seconds + b.cpu_seconds,
            server_cpu_seconds=a.server_cpu_seconds + b.server_cpu_seconds,
            latencies=a.latencies + b.latencies,
        )
        return Measured(self.path, self.mode, run, self.sink_cpu_seconds + other.sink_cpu_seconds)


def process_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(sinks: Any, path: str, mode: str, n: int, running: Any) -> Measured:
    """Run ``running`` (a drive), then wait until the sink has all N messages; the sink's CPU is
    taken out of the children's (the rest is the dev server's)."""
    before, sink_cpu = sinks.counts(path)[0], process_cpu(sinks.pid)
    run = await running
    waited = time.perf_counter()
    while sinks.counts(path)[0] - before < n:
        if time.perf_counter() - waited > 60:
            raise RuntimeError(f"{path} {mode}: {sinks.counts(path)[0] - before} of {n} messages arrived")
        await asyncio.sleep(0.02)
    run.seconds += time.perf_counter() - waited
    sink = process_cpu(sinks.pid) - sink_cpu
    run.server_cpu_seconds -= sink
    return Measured(path, mode, run, sink)


async def insert_profiles(store: Any, ids: list[str]) -> None:
    from flowline.store.tables import profiles

    created = datetime.now(UTC) - timedelta(hours=1)
    rows = [
        {
            "workspace_id": WORKSPACE,
            "id": pid,
            "attributes": {"email": f"{pid}@bench.test", "first_name": f"Ada {pid[-6:]}"},
            "tags": [],
            "do_not_contact": [],
            "created_at": created,
            "updated_at": created,
        }
        for pid in ids
    ]
    async with store.begin() as conn:
        await conn.execute(profiles.insert(), rows)


async def journeys(
    client: Any, store: Any, api: Any, sinks: Any, path: str, label: str, n: int, concurrency: int
) -> Measured:
    from bench.journeys import drive
    from worker import running_worker

    people = [f"{path}-{label}-{i:06d}" for i in range(n)]
    await insert_profiles(store, people)

    async def submit(i: int) -> list[str]:
        event = {"id": f"ev-{people[i]}", "profile_id": people[i], "name": f"bench_{path}"}
        response = await api.post("/v1/events", json={**event, "properties": {"plan": "pro"}})
        if response.status_code != 202:
            raise RuntimeError(f"POST /v1/events answered {response.status_code}: {response.text}")
        started: list[str] = response.json()["journeys"]
        return started

    async def wait(jid: str) -> Any:
        async with WAITERS:
            state = await client.get_workflow_handle(jid).result()
        if state.get("status") != "completed":
            raise RuntimeError(f"journey {jid} ended {state.get('status')!r}")
        return state

    # As `make run` has it: the sinks are on 127.0.0.1, and emails get their tracking links.
    async with running_worker(
        client, store, JOURNEY_QUEUE, allow_private_outbound=True, public_url=PUBLIC_URL
    ):
        return await measure(sinks, path, "journeys", n, drive("journeys", n, concurrency, submit, wait))


async def baseline(
    client: Any, sends: Any, sinks: Any, path: str, label: str, n: int, concurrency: int
) -> Measured:
    from temporalio.worker import Worker

    from bench.baseline_workflow import SendBaselineWorkflow
    from bench.journeys import drive

    async def submit(i: int) -> list[str]:
        wid = f"baseline-{path}-{label}-{i:06d}"
        await client.start_workflow(
            SendBaselineWorkflow.run, args=[path, wid], id=wid, task_queue=BASELINE_QUEUE
        )
        return [wid]

    async def wait(wid: str) -> Any:
        async with WAITERS:
            return await client.get_workflow_handle(wid).result()

    # The worker options of worker.running_worker.
    worker = Worker(
        client,
        task_queue=BASELINE_QUEUE,
        workflows=[SendBaselineWorkflow],
        activities=[sends.send],
        max_concurrent_activities=100,
    )
    async with worker:
        return await measure(sinks, path, "baseline", n, drive("baseline", n, concurrency, submit, wait))


# ---------------------------------------------------------------- main


async def run_path(
    args: argparse.Namespace, client: Any, store: Any, api: Any, sinks: Any, sends: Any, path: str
) -> tuple[Measured, Measured]:
    c, n = args.concurrency, args.messages
    if args.warmup:
        await baseline(client, sends, sinks, path, "warm", args.warmup, c)
        await journeys(client, store, api, sinks, path, "warm", args.warmup, c)
    print(f"{path}: baseline {n // 2}, journeys {n}, baseline {n - n // 2} (C={c})", flush=True)
    base = await baseline(client, sends, sinks, path, "a", n // 2, c)
    profiler = cProfile.Profile() if args.cprofile else None
    if profiler:
        profiler.enable()
    sent = await journeys(client, store, api, sinks, path, "run", n, c)
    if profiler:
        profiler.disable()
        profiler.dump_stats(f"{args.cprofile}.{path}")
    base += await baseline(client, sends, sinks, path, "b", n - n // 2, c)
    ratio = sent.run.per_s / base.run.per_s
    print(f"{path}: {sent.run.per_s:.1f} messages/s, baseline {base.run.per_s:.1f}/s, ratio {ratio:.2f}")
    return sent, base


async def check(store: Any, sinks: Any, paths: list[str], expected: int) -> list[str]:
    """Faults: every journey's delivery 'sent', no duplicate at a receiver."""
    from sqlalchemy import func, select

    from flowline.store.tables import deliveries

    faults = []
    for path in paths:
        channel = "email" if path == "email" else "webhook"
        async with store.connect() as conn:
            query = select(func.count()).where(deliveries.c.channel == channel, deliveries.c.status == "sent")
            sent = int(await conn.scalar(query) or 0)
        if sent != expected:
            faults.append(f"{path}: {sent} deliveries sent, expected {expected}")
        received, distinct = sinks.counts(path)
        if received != distinct:
            faults.append(f"{path}: {received - distinct} duplicates among {received} messages received")
    return faults


async def main(args: argparse.Namespace) -> int:
    import httpx
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from api.app import create_app
    from bench.report import report
    from bench.send_baseline import BaselineSends
    from bench.sinks import sinks as started_sinks
    from flowline.channels.config import ChannelSettings, SmtpSettings
    from flowline.channels.outbound import outbound_client
    from flowline.settings import Settings
    from flowline.store.database import Store
    from flowline.store.migrate import upgrade
    from flowline.store.workspaces import (
        create_api_key,
        create_workspace,
        set_channel_settings,
        webhook_secret,
    )
    from workflows import search_attributes as sa

    paths = list(dict.fromkeys(args.paths))
    if "email" in paths and not email_available():
        print("email: no SMTP provider in flowline/channels/registry.py yet; measuring http only")
        paths.remove("email")
    load_before = os.getloadavg()
    results: list[tuple[Measured, Measured]] = []
    with (
        tempfile.TemporaryDirectory(prefix="flowline-sends-") as tmp,
        started_sinks() as sinks,
        contextlib.ExitStack() as stack,
    ):
        if args.database == "postgres":
            from tests.databases import postgres_database

            # A schema of its own in the `test` database (FLOWLINE_TEST_POSTGRES), dropped at the end.
            url = stack.enter_context(postgres_database())
        else:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'flowline.db'}"
            upgrade(url)
        print(f"database {args.database}", flush=True)
        store = Store(url)
        smtp = SmtpSettings(
            host="127.0.0.1", port=sinks.smtp_port, security="none", from_address=FROM_ADDRESS
        )
        async with store.begin() as conn:
            await create_workspace(conn, WORKSPACE, "Benchmark")
            key = await create_api_key(conn, WORKSPACE, "bench")
            await set_channel_settings(conn, WORKSPACE, ChannelSettings(email=smtp))
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
            settings = Settings(database_url=url, task_queue=JOURNEY_QUEUE)
            app = create_app(settings, store=store, temporal=client)
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app),
                    base_url="http://flowline.bench",
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=120,
                ) as api,
                # As worker.running_worker's client for webhooks and providers.
                outbound_client(timeout=10.0, allow_private=True) as http,
            ):
                for path in paths:
                    document = flow(path, sinks.http_url)
                    (await api.put(f"/v1/flows/{document['id']}", json=document)).raise_for_status()
                    (await api.post(f"/v1/flows/{document['id']}/publish")).raise_for_status()
                sends = BaselineSends(smtp, http, sinks.http_url, secret)
                for path in paths:
                    results.append(await run_path(args, client, store, api, sinks, sends, path))
            faults = await check(store, sinks, paths, args.messages + args.warmup)
        finally:
            await env.shutdown()
            await store.dispose()
    if faults:
        print("check failed: " + "; ".join(faults))
        return 1
    print(f"checked: every journey's delivery sent, no duplicate at the receivers ({', '.join(paths)})")
    report(results, load_before, os.getloadavg())
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=2000, help="per path and mode (default 2,000)")
    parser.add_argument("--concurrency", type=int, default=50, help="starts in flight (default 50)")
    parser.add_argument("--warmup", type=int, default=20, help="uncounted messages first (default 20)")
    parser.add_argument("--paths", nargs="+", choices=["email", "http"], default=["email", "http"])
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="a fresh SQLite file (default) or a fresh schema in PostgreSQL at FLOWLINE_TEST_POSTGRES",
    )
    parser.add_argument("--cprofile", help="write cProfile stats of each journeys run to PATH.<path>")
    parser.add_argument(
        "--temporal",
        default=str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "temporal"),
        help="the Temporal CLI that runs the dev server (default .venv/bin/temporal)",
    )
    return parser.parse_args()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(asyncio.run(main(parse_args())))
