"""Import throughput: `flowline import profiles` of a generated CSV into a fresh database.

    .venv/bin/python bench/import.py [--database sqlite postgres] [--rows 1000000] [--batch 1000]

Writes a CSV of ``--rows`` people (id, email and five attributes: plan, age, vip, signed_up,
city), then per database starts ``python cli.py run`` (Temporal dev server, migrations, worker,
API under uvicorn) on free ports with a fresh database (SQLite in a temporary directory;
PostgreSQL: a schema of its own in the `test` database on 127.0.0.1:5432), declares the
attributes, and runs the real command line as a subprocess:

1. ``--no-triggers`` into the workspace of the stack's dev key (empty);
2. with triggers, into a second, empty workspace with one running ``profile_change`` flow (plan
   becomes ``pro``) that 10 % of the rows start (``--trigger-share``): the import's rate, and how
   long the journeys take to start behind it (``--journey-timeout``).

Each rate is rows over the command's wall time (reading, typing, HTTP, storing). Afterwards it
checks that every row is stored and, with triggers, that every expected journey started. The last
line: ``sqlite_rows_per_s=<n> postgres_rows_per_s=<n>`` (without triggers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import ROOT, Stack, flowline_run

TRIGGER_SHARE = 0.10
ATTRIBUTES = {"plan": "text", "age": "number", "vip": "boolean", "signed_up": "date", "city": "text"}
CITIES = ["Paris", "Berlin", "Rome", "Madrid", "Lisbon", "Oslo", "Vienna", "Prague"]


def make_csv(path: Path, rows: int, share: float, seed: int) -> int:
    """The file; returns how many rows have plan ``pro`` (the journeys expected)."""
    rng = random.Random(seed)
    pro = 0
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["id", "email", *ATTRIBUTES])
        for i in range(rows):
            plan = "pro" if rng.random() < share else rng.choice(["free", "trial"])
            pro += plan == "pro"
            day = f"2025-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
            vip = rng.choice(["true", "false"])
            out.writerow(
                [f"p{i}", f"p{i}@example.com", plan, rng.randrange(18, 90), vip, day, rng.choice(CITIES)]
            )
    return pro


@dataclass
class Run:
    database: str
    variant: str
    rows: int
    seconds: float = 0.0
    stored: int = 0
    expected_journeys: int = 0
    journeys_at_end: int = 0
    journeys: int = 0
    journeys_seconds: float | None = None
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def correct(self) -> bool:
        return self.stored == self.rows and self.journeys == self.expected_journeys


def profile_change_flow() -> dict[str, Any]:
    return {
        "id": "upgraded",
        "name": "Upgraded to pro",
        "trigger": {"type": "profile_change", "attribute": "plan", "to": "pro"},
        "steps": [{"id": "rest", "type": "pause", "for": "7d"}, {"id": "done", "type": "exit"}],
    }


async def new_workspace(url: str, name: str) -> str:
    from flowline.store import workspaces
    from flowline.store.database import Store

    store = Store(url)
    try:
        async with store.begin() as conn:
            await workspaces.create_workspace(conn, name, name)
            return await workspaces.create_api_key(conn, name)
    finally:
        await store.dispose()


async def counts(url: str, workspace: str) -> tuple[int, int]:
    """(profiles, journeys) of the workspace."""
    from sqlalchemy import func, select

    from flowline.store.database import Store
    from flowline.store.tables import journeys, profiles

    store = Store(url)
    try:
        async with store.connect() as conn:
            people = await conn.scalar(select(func.count()).where(profiles.c.workspace_id == workspace))
            started = await conn.scalar(select(func.count()).where(journeys.c.workspace_id == workspace))
    finally:
        await store.dispose()
    return int(people or 0), int(started or 0)


def prepare(stack: Stack, key: str, flow: bool) -> None:
    import httpx

    with httpx.Client(base_url=stack.api, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        for name, kind in ATTRIBUTES.items():
            http.put(f"/v1/attributes/{name}", json={"type": kind}).raise_for_status()
        if flow:
            http.put("/v1/flows/upgraded", json=profile_change_flow()).raise_for_status()
            http.post("/v1/flows/upgraded/publish").raise_for_status()


def run_import(stack: Stack, key: str, file: Path, batch: int, triggers: bool, run: Run) -> None:
    command = [sys.executable, "-c", "from commands.imports import main; main()", "import", "profiles"]
    command += [str(file), "--batch-size", str(batch), "--quiet", "--url", stack.api, "--key", key]
    if not triggers:
        command.append("--no-triggers")
    cpu = stack.cpu_seconds()
    began = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    run.seconds = time.perf_counter() - began
    after = stack.cpu_seconds()
    run.cpu = {name: after[name] - cpu.get(name, 0.0) for name in after}
    print(done.stdout, done.stderr, flush=True)
    if done.returncode != 0:
        raise RuntimeError(f"the import failed ({done.returncode})")
    for leftover in (".checkpoint", ".rejected.csv"):
        Path(str(file) + leftover).unlink(missing_ok=True)


def bench(database: str, args: argparse.Namespace, file: Path, expected: int) -> list[Run]:
    runs = []
    with tempfile.TemporaryDirectory(prefix="flowline-import-") as tmp, contextlib.ExitStack() as stack:
        if database == "postgres":
            from tests.databases import postgres_database

            url = stack.enter_context(postgres_database())
        else:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'flowline.db'}"
        print(f"database {database}; starting `cli.py run`", flush=True)
        running = stack.enter_context(flowline_run(Path(tmp), url))
        quiet = Run(database, "no triggers", args.rows)
        prepare(running, running.key, flow=False)
        run_import(running, running.key, file, args.batch, False, quiet)
        quiet.stored, quiet.journeys = asyncio.run(counts(url, "default"))
        runs.append(quiet)
        if args.triggers:
            key = asyncio.run(new_workspace(url, "bench-triggers"))
            loud = Run(database, "triggers, 1 flow", args.rows, expected_journeys=expected)
            prepare(running, key, flow=True)
            run_import(running, key, file, args.batch, True, loud)
            loud.stored, loud.journeys_at_end = asyncio.run(counts(url, "bench-triggers"))
            # The journeys start behind the import: how long until all have.
            began = time.perf_counter()
            while True:
                _, loud.journeys = asyncio.run(counts(url, "bench-triggers"))
                if loud.journeys >= expected or time.perf_counter() - began > args.journey_timeout:
                    break
                time.sleep(1.0)
            if loud.journeys >= expected:
                loud.journeys_seconds = time.perf_counter() - began
            runs.append(loud)
    return runs


def report(runs: list[Run]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=180)
    table = Table(title="flowline import profiles: rows per second (wall time of the command)")
    columns = ["database", "variant", "rows", "seconds", "rows/s", "ratio", "stored", "journeys at end"]
    columns += [
        "journeys",
        "expected",
        "all started after (s)",
        "api cpu %",
        "worker cpu %",
        "temporal cpu %",
    ]
    for column in columns:
        table.add_column(column, justify="right", no_wrap=True)
    base = {r.database: r.per_s for r in runs if r.variant == "no triggers"}
    for run in runs:
        table.add_row(
            run.database,
            run.variant,
            str(run.rows),
            f"{run.seconds:.1f}",
            f"{run.per_s:.0f}",
            f"{run.per_s / base[run.database]:.2f}" if base.get(run.database) else "-",
            str(run.stored),
            str(run.journeys_at_end),
            str(run.journeys),
            str(run.expected_journeys),
            "-" if run.journeys_seconds is None else f"{run.journeys_seconds:.0f}",
            *(f"{run.cpu.get(n, 0.0) / run.seconds:.0%}" for n in ("api", "worker", "temporal")),
        )
    console.print(table)
    for run in runs:
        if not run.correct:
            console.print(f"[red]{run.database} ({run.variant}): rows stored or journeys differ[/]")


def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="flowline-import-csv-") as tmp:
        file = Path(tmp) / "people.csv"
        began = time.perf_counter()
        expected = make_csv(file, args.rows, args.trigger_share, args.seed)
        size = os.path.getsize(file) / 1e6
        print(f"{args.rows} rows ({size:.0f} MB) written in {time.perf_counter() - began:.1f} s", flush=True)
        runs = [run for database in args.database for run in bench(database, args, file, expected)]
    report(runs)
    quiet = {r.database: r.per_s for r in runs if r.variant == "no triggers"}
    print(" ".join(f"{database}_rows_per_s={rate:.0f}" for database, rate in quiet.items()))
    return 0 if all(run.correct for run in runs) else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database", choices=["sqlite", "postgres"], nargs="+", default=["sqlite", "postgres"]
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the CSV (default 1000000)")
    parser.add_argument("--batch", type=int, default=1000, help="rows per request (default 1000)")
    parser.add_argument(
        "--trigger-share", type=float, default=TRIGGER_SHARE, help="share of rows that start a journey"
    )
    parser.add_argument(
        "--no-triggers-variant", dest="triggers", action="store_false", help="skip the run with a flow"
    )
    parser.add_argument(
        "--journey-timeout", type=float, default=900, help="s to wait for the journeys to start"
    )
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main(parse_args()))
