"""What an export step costs a journey, and how fast the batcher empties the outbox.

    .venv/bin/python bench/exports.py [--journeys N] [--concurrency C] [--rounds R] [--records M]

(a) journeys: two published flows on one dev server and store, run in alternating rounds:
    ``event -> export (clevertap) -> exit`` and the same flow with ``update_variable`` in place of
    the export. Triggered through the real API in-process (POST /v1/events, at most C in flight),
    run by ``worker.running_worker`` with the export batcher delivering beside it, as a worker
    does (flush 2 s); timed from the first POST until every journey's result is in.
(b) records/s: the batcher (4 batches in flight per destination, 1,000 records each) delivers an
    outbox of M records to the fake CleverTap on 127.0.0.1 (tests/fake_clevertap.py, which checks
    every record as CleverTap does); timed from the first claim until the last outcome is stored.

The last line: ``ratio=<r> records_per_s=<n>`` (ratio = export journeys/s ÷ update_variable
journeys/s, means over the rounds). Targets (issue 14): ratio >= 0.9, records_per_s >= 5,000.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.journeys import Run, drive

QUEUE = "bench-exports"


def flow(flow_id: str, step: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": flow_id,
        "name": flow_id,
        "trigger": {"type": "event", "event": flow_id},
        "steps": [{"id": "step", **step, "next": "done"}, {"id": "done", "type": "exit"}],
    }


EXPORT = flow(
    "bench-export",
    {
        "type": "export",
        "destination": "ct",
        "event": "Bench {{ event.plan }}",
        "fields": {"plan": "{{ event.plan }}", "n": {"expression": "1 + 1"}},
    },
)
VARIABLE = flow("bench-variable", {"type": "update_variable", "set": {"n": "1 + 1"}})


async def journeys(client: Any, http: Any, flow_id: str, n: int, concurrency: int) -> Run:
    tag = uuid.uuid4().hex[:8]

    async def submit(i: int) -> list[str]:
        event = {
            "id": f"{flow_id}-{tag}-{i}",
            "profile_id": f"p-{tag}-{i}",
            "name": flow_id,
            "properties": {"plan": "pro"},
        }
        response = await http.post("/v1/events", json=event)
        if response.status_code != 202:
            raise RuntimeError(f"POST /v1/events answered {response.status_code}: {response.text}")
        started: list[str] = response.json()["journeys"]
        return started

    async def wait(journey_id: str) -> Any:
        state = await client.get_workflow_handle(journey_id).result()
        if state.get("status") != "completed":
            raise RuntimeError(f"journey {journey_id} ended {state.get('status')!r}")
        return state

    return await drive(flow_id, n, concurrency, submit, wait)


async def fill_outbox(store: Any, records: int) -> None:
    from flowline.store import export_records, profiles
    from flowline.store.export_records import NewRecord

    stamp = datetime.now(UTC)
    async with store.begin() as conn:
        await profiles.ensure_profiles(store, conn, "bench", ["outbox-person"])
    for start in range(0, records, 5_000):
        batch = [
            NewRecord(
                "ct", f"fill-{i}", "outbox-person", "event", "Bench Fill", stamp, {"n": i, "plan": "pro"}
            )
            for i in range(start, min(records, start + 5_000))
        ]
        async with store.begin() as conn:
            await export_records.add_records(conn, "bench", batch)


async def main(args: argparse.Namespace) -> int:
    import httpx
    from rich.console import Console
    from rich.table import Table
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from api.app import create_app
    from flowline.exports.batcher import Batcher, BatcherSettings
    from flowline.settings import Settings
    from flowline.store import export_records
    from flowline.store.database import Store
    from flowline.store.migrate import upgrade
    from flowline.store.workspaces import create_api_key, create_workspace
    from tests.fake_clevertap import fake_clevertap
    from worker import running_worker
    from workflows import search_attributes as sa

    console = Console(width=160)
    runs: list[Run] = []
    with (
        tempfile.TemporaryDirectory(prefix="flowline-bench-") as tmp,
        contextlib.ExitStack() as stack,
        fake_clevertap() as fake,
    ):
        if args.database == "postgres":
            from tests.databases import postgres_database

            url = stack.enter_context(postgres_database())
        else:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'flowline.db'}"
            upgrade(url)
        console.print(f"[bold]database[/] {args.database}")
        store = Store(url)
        async with store.begin() as conn:
            await create_workspace(conn, "bench", "Benchmark")
            key = await create_api_key(conn, "bench", "bench")
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=args.temporal,
            search_attributes=[sa.WORKSPACE_ID, sa.FLOW_ID, sa.FLOW_VERSION, sa.PROFILE_ID, sa.STEP_ID],
            ui=False,
            data_converter=pydantic_data_converter,
            dev_server_log_level="error",
        )
        try:
            client = env.client
            settings = Settings(database_url=url, task_queue=QUEUE, allow_private_outbound=True)
            app = create_app(settings, store=store, temporal=client)
            stop = asyncio.Event()
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app),
                    base_url="http://flowline.bench",
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=60,
                ) as http,
                httpx.AsyncClient(timeout=30) as outbound,
                running_worker(client, store, QUEUE, allow_private_outbound=True),
            ):
                destination = {
                    "type": "clevertap",
                    "account_id": fake.account_id,
                    "passcode": fake.passcode,
                    "base_url": fake.url,
                    "identity": "id",
                }
                (await http.put("/v1/destinations/ct", json=destination)).raise_for_status()
                for document in (EXPORT, VARIABLE):
                    (await http.put(f"/v1/flows/{document['id']}", json=document)).raise_for_status()
                    (await http.post(f"/v1/flows/{document['id']}/publish")).raise_for_status()
                # The batcher runs beside the journeys, as a worker runs it.
                beside = Batcher(store, outbound, BatcherSettings(flush_seconds=2.0), workspace_id="bench")
                delivering = asyncio.create_task(beside.run(stop))
                console.print("[bold]warm-up[/]")
                for document in (VARIABLE, EXPORT):
                    await journeys(client, http, str(document["id"]), args.warmup, args.concurrency)
                for round_ in range(args.rounds):
                    for document in (VARIABLE, EXPORT):
                        console.print(f"[bold]round {round_ + 1}[/] {document['id']} N={args.journeys}")
                        runs.append(
                            await journeys(client, http, str(document["id"]), args.journeys, args.concurrency)
                        )
                stop.set()
                await delivering
                # The journeys' own records first: every one is delivered.
                await Batcher(store, outbound, BatcherSettings(flush_seconds=0), workspace_id="bench").drain()
                exported = args.warmup + args.rounds * args.journeys
                async with store.connect() as conn:
                    found = await export_records.list_records(
                        conn, "bench", "ct", status="delivered", limit=exported + 1
                    )
                if len(found) != exported:
                    console.print(
                        f"[red]expected {exported} delivered records of the journeys, found {len(found)}[/]"
                    )
                    return 1

                console.print(f"[bold]outbox[/] {args.records} records")
                await fill_outbox(store, args.records)
                before = len(fake.accepted)
                batcher = Batcher(
                    store, outbound, BatcherSettings(flush_seconds=0, concurrency=4), workspace_id="bench"
                )
                began = time.perf_counter()
                counts = (await batcher.drain()).counts
                drain_seconds = time.perf_counter() - began
                if counts != {"delivered": args.records} or len(fake.accepted) - before != args.records:
                    took = len(fake.accepted) - before
                    console.print(f"[red]the outbox drained as {counts}; CleverTap took {took}[/]")
                    return 1
        finally:
            await env.shutdown()
            await store.dispose()

    table = Table(title="Export step vs update_variable (alternating rounds), then the batcher")
    for column in (
        "run",
        "N",
        "concurrency",
        "seconds",
        "journeys/s",
        "py_cpu_ms/journey",
        "server_cpu_ms/journey",
    ):
        table.add_column(column, justify="left" if column == "run" else "right", no_wrap=True)
    for run in runs:
        table.add_row(
            run.mode,
            str(run.n),
            str(run.concurrency),
            f"{run.seconds:.2f}",
            f"{run.per_s:.1f}",
            f"{run.cpu_seconds / run.n * 1000:.1f}",
            f"{run.server_cpu_seconds / run.n * 1000:.1f}",
        )
    records_per_s = args.records / drain_seconds
    table.add_row(
        "batcher drain",
        str(args.records),
        "4 batches",
        f"{drain_seconds:.2f}",
        f"{records_per_s:.0f} records/s",
        "",
        "",
    )
    console.print(table)
    export_rate = statistics.mean(r.per_s for r in runs if r.mode == EXPORT["id"])
    variable_rate = statistics.mean(r.per_s for r in runs if r.mode == VARIABLE["id"])
    console.print(
        f"means: export {export_rate:.1f} journeys/s, update_variable {variable_rate:.1f} journeys/s"
    )
    print(f"ratio={export_rate / variable_rate:.2f} records_per_s={records_per_s:.0f}")
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--journeys", type=int, default=500, help="journeys per flow and round (default 500)")
    parser.add_argument("--concurrency", type=int, default=20, help="events in flight (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of both flows (default 3)")
    parser.add_argument(
        "--warmup", type=int, default=20, help="uncounted journeys of each flow first (default 20)"
    )
    parser.add_argument(
        "--records", type=int, default=50_000, help="records in the outbox to drain (default 50,000)"
    )
    parser.add_argument(
        "--temporal",
        default=str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "temporal"),
        help="the Temporal CLI that runs the dev server (default .venv/bin/temporal)",
    )
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    return parser.parse_args()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(asyncio.run(main(parse_args())))
