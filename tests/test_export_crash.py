"""The export outbox through a SIGKILL: ``python cli.py export-batcher`` (the batcher every worker
also runs) is killed while CleverTap holds its batches, and a new process delivers every record.

The window, measured here: the batches in flight when the process died reach CleverTap, but
their outcomes are never stored; once their lease runs out the next process sends them again.
CleverTap takes no idempotency key, so those records arrive twice; no record is lost.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flowline.destinations.settings import CleverTapDestination
from flowline.store import destinations, export_records, profiles, workspaces
from flowline.store.database import Store
from flowline.store.export_records import NewRecord
from tests.databases import postgres_database, postgres_unavailable, sqlite_database
from tests.fake_clevertap import fake_clevertap
from tests.processes import ROOT
from tests.test_crash import until

# Starts OS processes, as the crash tests do: not in `make quick`.
pytestmark = pytest.mark.temporal
RECORDS = 3_000
CONCURRENCY = 2
LEASE_SECONDS = 2


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own: the batcher process delivers every workspace's outbox."""
    if request.param == "sqlite":
        with sqlite_database(tmp_path) as url:
            yield url
        return
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(reason)
    with postgres_database() as url:
        yield url


def start_batcher(database_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        FLOWLINE_DATABASE_URL=database_url,
        FLOWLINE_ALLOW_PRIVATE_OUTBOUND="true",
        FLOWLINE_EXPORT_FLUSH_SECONDS="0.2",
        FLOWLINE_EXPORT_CONCURRENCY=str(CONCURRENCY),
        FLOWLINE_EXPORT_LEASE_SECONDS=str(LEASE_SECONDS),
    )
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "cli.py", "export-batcher"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def open_records(store: Store) -> int:
    async with store.connect() as conn:
        return await export_records.open_count(conn)


async def test_a_killed_batcher_loses_no_record(database_url: str, tmp_path: Path) -> None:
    store = Store(database_url)
    log = tmp_path / "batcher.log"
    first: subprocess.Popen[bytes] | None = None
    second: subprocess.Popen[bytes] | None = None
    try:
        # CleverTap holds each upload 1.5 s: the kill finds batches in flight.
        with fake_clevertap(delay=1.5) as fake:
            async with store.begin() as conn:
                await workspaces.create_workspace(conn, "ws", "ws")
                await profiles.upsert_profile(store, conn, "ws", "p", {})
                settings = CleverTapDestination(
                    account_id=fake.account_id, passcode=fake.passcode, base_url=fake.url, identity="id"
                )
                await destinations.put_destination(store, conn, "ws", "ct", settings)
                stamp = datetime(2026, 12, 1, tzinfo=UTC)
                await export_records.add_records(
                    conn,
                    "ws",
                    [
                        NewRecord("ct", f"k{i}", "p", "event", "Bought", stamp, {"n": i})
                        for i in range(RECORDS)
                    ],
                )
            first = start_batcher(database_url, log)
            await until(lambda: fake.in_flight == CONCURRENCY, patience=60)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            in_flight_at_kill = CONCURRENCY * 1000
            second = start_batcher(database_url, log)
            for _ in range(600):  # up to two minutes
                if not await open_records(store):
                    break
                await asyncio.sleep(0.2)
            assert await open_records(store) == 0, log.read_text()[-3000:]
            received = Counter(record["evtData"]["n"] for record in fake.accepted)
        async with store.connect() as conn:
            found = await export_records.list_records(conn, "ws", "ct", limit=10_000)
        assert Counter(r["status"] for r in found) == {"delivered": RECORDS}
        # Every record arrived; the only repeats are the batches the kill interrupted.
        assert set(received) == set(range(RECORDS))
        repeated = sum(n - 1 for n in received.values())
        assert 0 < repeated <= in_flight_at_kill
        assert max(r["attempts"] for r in found) == 2
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
        await store.dispose()
