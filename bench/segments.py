"""Segment queries on PostgreSQL: 1,000,000 profiles, 10,000,000 events.

    .venv/bin/python bench/segments.py [--rebuild] [--runs 5] [--samples 200] [--explain]

A database of its own (``flowline_bench_segments`` on 127.0.0.1:5432, FLOWLINE_BENCH_POSTGRES),
migrated with our Alembic migrations, filled server-side (INSERT ... SELECT generate_series)
with one workspace: profiles with a few attributes, events over the 90 days before a fixed
``NOW`` among ten names; then VACUUM ANALYZE. Filling takes minutes, so a complete database is
reused on a rerun (``--rebuild`` fills it again); the migrations run every time (idempotent).

Measured, with the product's own code:
- count: ``flowline.store.segments_query.count`` of a three-condition segment (an attribute,
  an event count within 30 days, an event not happened within 7 days); median of ``--runs``
  after one warm-up.
- one profile: what a ``branch`` step does (activities/conditions.py): ``load_profile_facts``
  for the events the condition needs, then ``evaluate`` in memory, pool checkout included;
  median over ``--samples`` random profiles. The SQL restricted to one profile id (what a
  re-evaluation of a few profiles runs) is shown beside it, and both must agree.

The last line printed is machine-readable: ``count_seconds=<n> one_profile_ms=<n>``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from pydantic import TypeAdapter
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex

from flowline.conditions.evaluate import evaluate, needs
from flowline.conditions.rules import Condition
from flowline.conditions.sql import compile_condition
from flowline.store import segments_query
from flowline.store.database import Store
from flowline.store.migrate import upgrade
from flowline.store.profile_facts import load_profile_facts
from flowline.store.tables import events, profiles

SERVER = os.environ.get("FLOWLINE_BENCH_POSTGRES", "host=127.0.0.1 port=5432")
DATABASE = "flowline_bench_segments"
WORKSPACE = "bench"
# Every timestamp is relative to this instant, so a reused database means the same thing.
NOW = datetime(2026, 11, 1, tzinfo=UTC)
# Event names and their shares of all events (cumulative thresholds below).
EVENT_SHARES = [
    ("page_view", 0.40),
    ("app_open", 0.20),
    ("add_to_cart", 0.10),
    ("purchase", 0.06),
    ("search", 0.08),
    ("message_opened", 0.05),
    ("message_clicked", 0.03),
    ("signup", 0.01),
    ("review", 0.03),
    ("share", 0.04),
]
SEGMENT: dict[str, Any] = {
    "all": [
        {"attribute": "plan", "type": "text", "op": "is", "value": "pro"},
        {"event": "page_view", "within": "30d", "count": {"op": ">=", "value": 2}},
        {"event": "app_open", "within": "7d", "happened": False},
    ]
}


def dsn(dbname: str) -> str:
    return f"{SERVER} dbname={dbname}"


def database_url() -> str:
    params = dict(item.split("=", 1) for item in SERVER.split())
    user = params.get("user", "")
    host, port = params.get("host", "127.0.0.1"), params.get("port", "5432")
    return f"postgresql+psycopg://{user}@{host}:{port}/{DATABASE}"


# ---------------------------------------------------------------- filling


def ensure_database(rebuild: bool, n_profiles: int, n_events: int, console: Console) -> None:
    """Create, migrate and fill the database unless a complete one of that size exists."""
    with psycopg.connect(dsn("postgres"), autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        if exists and rebuild:
            admin.execute(f'DROP DATABASE "{DATABASE}" WITH (FORCE)')
            exists = None
        if not exists:
            admin.execute(f'CREATE DATABASE "{DATABASE}"')
    upgrade(database_url())  # idempotent: brings a reused database to the newest schema
    with psycopg.connect(dsn(DATABASE), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_fill (profiles int, events int, filled_at timestamptz)"
        )
        done = conn.execute(
            "SELECT 1 FROM bench_fill WHERE profiles = %s AND events = %s", (n_profiles, n_events)
        ).fetchone()
        if done:
            console.print(f"[bold]reusing[/] {DATABASE} ({n_profiles:,} profiles, {n_events:,} events)")
            # Index-only scans need pages marked all-visible; a vacuum during someone's long
            # transaction (or an index added by a new migration) may have left some unmarked.
            stale = conn.execute(
                "SELECT 1 FROM pg_class WHERE relname IN ('events', 'profiles')"
                " AND relallvisible < 0.95 * relpages"
            ).fetchone()
            if stale:
                conn.execute("VACUUM ANALYZE events, profiles")
            return
        fill(conn, n_profiles, n_events, console)


def fill(conn: psycopg.Connection[Any], n_profiles: int, n_events: int, console: Console) -> None:
    started = time.perf_counter()
    conn.execute("TRUNCATE bench_fill, events, profiles, workspaces CASCADE")
    conn.execute("SET maintenance_work_mem = '1GB'")
    conn.execute("SET synchronous_commit = off")
    conn.execute(
        "INSERT INTO workspaces (id, name, webhook_secret, created_at) VALUES (%s, 'Segments', 'x', %s)",
        (WORKSPACE, NOW),
    )
    # Secondary indexes are built once at the end (much faster than row by row); the primary
    # keys stay, and ids grow in key order so they only append.
    secondary = [
        (index.name, str(CreateIndex(index).compile(dialect=postgresql.dialect())))
        for index in [*events.indexes, *profiles.indexes]
    ]
    for name, _ in secondary:
        conn.execute(f'DROP INDEX IF EXISTS "{name}"')
    conn.execute(
        """
        INSERT INTO profiles (workspace_id, id, attributes, tags, do_not_contact, created_at, updated_at)
        SELECT %(ws)s, 'p' || lpad(g::text, 7, '0'),
               jsonb_build_object(
                 'plan', (ARRAY['free', 'pro', 'business'])[1 + g %% 3],
                 'country', (ARRAY['DE', 'FR', 'US', 'GB', 'PL', 'ES', 'IT', 'NL'])[1 + (g / 3) %% 8],
                 'age', 18 + (g * 7) %% 60,
                 'signed_up', to_char(%(now)s::timestamptz - (g %% 1000) * interval '1 day', 'YYYY-MM-DD')),
               '[]'::jsonb, '[]'::jsonb, %(now)s, %(now)s
        FROM generate_series(1, %(n)s::int) g
        """,
        {"ws": WORKSPACE, "now": NOW, "n": n_profiles},
    )
    console.print(f"  {n_profiles:,} profiles in {time.perf_counter() - started:.0f} s")
    name_case = "CASE"
    bound = 0.0
    for name, share in EVENT_SHARES:
        bound += share
        name_case += f" WHEN r < {bound:.4f} THEN '{name}'"
    name_case += f" ELSE '{EVENT_SHARES[0][0]}' END"
    conn.execute("SELECT setseed(0.42)")
    chunk = 1_000_000
    for first in range(1, n_events + 1, chunk):
        last = min(first + chunk - 1, n_events)
        conn.execute(
            f"""
            INSERT INTO events
              (workspace_id, id, profile_id, name, timestamp, properties, received_at, routed_at)
            SELECT %(ws)s, 'e' || lpad(g::text, 9, '0'), 'p' || lpad(p::text, 7, '0'), {name_case},
                   ts, jsonb_build_object('value', g %% 100), ts, ts
            FROM (SELECT g, 1 + floor(random() * %(np)s::int)::int AS p, random() AS r,
                         %(now)s::timestamptz - random() * interval '90 days' AS ts
                  FROM generate_series(%(first)s::bigint, %(last)s::bigint) g) s
            """,
            {"ws": WORKSPACE, "np": n_profiles, "now": NOW, "first": first, "last": last},
        )
        console.print(f"  {last:,} events in {time.perf_counter() - started:.0f} s")
    for name, definition in secondary:
        conn.execute(definition)
        console.print(f"  index {name} in {time.perf_counter() - started:.0f} s")
    conn.execute("VACUUM ANALYZE")
    conn.execute("INSERT INTO bench_fill VALUES (%s, %s, now())", (n_profiles, n_events))
    console.print(f"[bold]filled[/] {DATABASE} in {time.perf_counter() - started:.0f} s")


# ---------------------------------------------------------------- measuring


def _backend_cpu(pid: int) -> float | None:
    """CPU seconds a local PostgreSQL backend has used (None if it is not on this machine)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def time_count(store: Store, condition: Condition, runs: int) -> tuple[list[float], list[float], int]:
    """Wall seconds per count, the server's CPU seconds per count, and the count."""
    seconds: list[float] = []
    cpu: list[float] = []
    found = 0
    for run in range(runs + 1):
        async with store.connect() as conn:
            pid = int(await conn.scalar(select(func.pg_backend_pid())))  # type: ignore[arg-type]
            await conn.commit()
            cpu_before = _backend_cpu(pid)
            started = time.perf_counter()
            found = await segments_query.count(conn, WORKSPACE, condition, NOW)
            elapsed = time.perf_counter() - started
            cpu_after = _backend_cpu(pid)
            if run:  # the first run warms the cache
                seconds.append(elapsed)
                if cpu_before is not None and cpu_after is not None:
                    cpu.append(cpu_after - cpu_before)
    return seconds, cpu, found


async def time_one_profile(
    store: Store, condition: Condition, ids: list[str]
) -> tuple[list[float], list[float], int, int]:
    """Milliseconds per profile in memory (as a branch step) and in SQL; members; disagreements."""
    wanted = needs([condition])
    compiled = compile_condition(condition, workspace_id=WORKSPACE, now=NOW, dialect="postgresql")
    in_memory: list[float] = []
    in_sql: list[float] = []
    members = disagreements = 0
    for index, profile_id in enumerate([ids[0], *ids]):  # the first one warms up
        started = time.perf_counter()
        async with store.connect() as conn:
            facts = await load_profile_facts(conn, WORKSPACE, profile_id, event_names=wanted.events)
        held = evaluate(condition, facts, NOW)
        memory_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        async with store.connect() as conn:
            query = select(profiles.c.id).where(
                profiles.c.workspace_id == WORKSPACE, profiles.c.id == profile_id, compiled
            )
            held_sql = (await conn.execute(query)).first() is not None
        sql_ms = (time.perf_counter() - started) * 1000
        if index:
            in_memory.append(memory_ms)
            in_sql.append(sql_ms)
            members += held
            disagreements += held != held_sql
    return in_memory, in_sql, members, disagreements


async def explain(store: Store, condition: Condition, console: Console) -> None:
    async with store.connect() as conn:
        where = segments_query._where(conn, WORKSPACE, condition, NOW, audience=True)
        query = select(func.count()).select_from(profiles).where(*where)  # type: ignore[arg-type]
        await segments_query._tuned(conn, whole_audience=True)
        compiled = query.compile(conn.sync_connection)  # type: ignore[arg-type]
        console.print(str(compiled), markup=False, highlight=False)
        plan = await conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + str(compiled), compiled.params)
        for (line,) in plan:
            console.print(line, markup=False, highlight=False)


async def main(args: argparse.Namespace) -> None:
    console = Console(width=160)
    ensure_database(args.rebuild, args.profiles, args.events, console)
    condition: Condition = TypeAdapter(Condition).validate_python(SEGMENT)
    store = Store(database_url())
    try:
        if args.explain:
            await explain(store, condition, console)
        count_s, count_cpu, found = await time_count(store, condition, args.runs)
        rng = random.Random(7)
        ids = [f"p{rng.randint(1, args.profiles):07d}" for _ in range(args.samples)]
        memory_ms, sql_ms, members, disagreements = await time_one_profile(store, condition, ids)
    finally:
        await store.dispose()

    table = Table(title=f"segment of three conditions, {args.profiles:,} profiles, {args.events:,} events")
    for column in ("measure", "n", "median", "min", "max", "result"):
        table.add_column(column, justify="right" if column != "measure" else "left")
    table.add_row(
        "count (segments_query.count), s",
        str(len(count_s)),
        f"{statistics.median(count_s):.3f}",
        f"{min(count_s):.3f}",
        f"{max(count_s):.3f}",
        f"{found:,} members",
    )
    if count_cpu:
        table.add_row(
            "count: the server's CPU, s",
            str(len(count_cpu)),
            f"{statistics.median(count_cpu):.3f}",
            f"{min(count_cpu):.3f}",
            f"{max(count_cpu):.3f}",
            f"load average {os.getloadavg()[0]:.1f}",
        )
    for label, values in (
        ("one profile: facts + evaluate (branch step), ms", memory_ms),
        ("one profile: compiled SQL for one id, ms", sql_ms),
    ):
        table.add_row(
            label,
            str(len(values)),
            f"{statistics.median(values):.2f}",
            f"{min(values):.2f}",
            f"{max(values):.2f}",
            f"{members} of {len(ids)} members, {disagreements} disagree",
        )
    console.print(table)
    if disagreements:
        console.print("[bold red]in-memory and SQL results disagree[/]")
    print(f"count_seconds={statistics.median(count_s):.3f} one_profile_ms={statistics.median(memory_ms):.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rebuild", action="store_true", help="fill the database again")
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=5, help="timed counts after one warm-up")
    parser.add_argument("--samples", type=int, default=200, help="random profiles timed one by one")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of the count")
    asyncio.run(main(parser.parse_args()))
