"""What reading the API key on every request costs (docs/keys.md): the price of revocation at once.

    .venv/bin/python bench/keys.py [--database sqlite postgres] [--requests N]

For each database, in this process: (1) the key check alone (services/api_keys.KeyCheck.key: one
indexed SELECT by the key's hash; the last use is written at most once a minute) against a hit of
the 30 s per-process cache it replaced (flowline/ttl_cache.py) and a bare ``SELECT 1``; (2) whole
``GET /v1/workspace`` requests through the app (httpx's ASGI transport, no network), with the key
read each time against the same app with the old cache put back in front of the check. Sequential
requests, after a warm-up; mean and p50 / p99 in microseconds. The last line per database:
``<db>_check_us=<n> <db>_request_us=<n> <db>_request_cached_us=<n>`` (means).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import httpx
import psycopg
from sqlalchemy import text
from temporalio.client import Client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.app import create_app
from flowline.settings import Settings
from flowline.store import workspaces
from flowline.store.api_keys import KeyRecord
from flowline.store.database import Store
from flowline.store.migrate import upgrade
from flowline.ttl_cache import TtlCache
from services.api_keys import KeyCheck

POSTGRES = "postgresql+psycopg://@127.0.0.1:5432/test"
POSTGRES_DSN = "host=127.0.0.1 port=5432 dbname=test"


class CachedKeyCheck(KeyCheck):
    """The behaviour before: a key found is trusted for 30 s by this process."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.cache: TtlCache[str, KeyRecord] = TtlCache(30.0)

    async def key(self, secret: str) -> KeyRecord | None:
        found = self.cache.get(secret)
        if found is None:
            found = await super().key(secret)
            if found is not None:
                self.cache.put(secret, found)
        return found


async def timed(call: Callable[[], Awaitable[object]], n: int) -> list[float]:
    for _ in range(min(50, n)):
        await call()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1e6)
    return times


def line(name: str, times: list[float]) -> str:
    ordered = sorted(times)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    mean, p50 = statistics.fmean(times), statistics.median(times)
    return f"  {name:<40} mean {mean:8.1f} us  p50 {p50:8.1f}  p99 {p99:8.1f}"


async def run(database: str, url: str, n: int) -> None:
    upgrade(url)
    store = Store(url)
    workspace = f"bench-keys-{uuid.uuid4().hex[:8]}"
    async with store.begin() as conn:
        await workspaces.create_workspace(conn, workspace, workspace)
        key = await workspaces.create_api_key(conn, workspace, "bench", "read")
    check = KeyCheck(store)
    cache: TtlCache[str, str] = TtlCache(30.0)
    cache.put(key, workspace)

    async def select_one() -> None:
        async with store.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def cache_hit() -> None:
        cache.get(key)

    print(f"{database}: {n} sequential calls each")
    checked = await timed(lambda: check.key(key), n)
    print(line("key check (indexed SELECT)", checked))
    print(line("SELECT 1 (a round trip)", await timed(select_one, n)))
    print(line("30 s cache hit (before)", await timed(cache_hit, n)))

    means: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(database_url=url, data_dir=Path(data_dir), sweep_seconds=0)
        # GET /v1/workspace touches no Temporal: the lifespan gets a stand-in it never calls.
        app = create_app(settings, store=store, temporal=cast(Client, object()))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            headers = {"Authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(transport=transport, base_url="http://f", headers=headers) as api:

                async def request() -> Any:
                    answer = await api.get("/v1/workspace")
                    assert answer.status_code == 200, answer.text

                # Interleaved rounds, so that load from elsewhere falls on both alike.
                checks = {"read each time": KeyCheck(store), "cached 30 s": CachedKeyCheck(store)}
                rounds: dict[str, list[float]] = {label: [] for label in checks}
                for _ in range(10):
                    for label, keys in checks.items():
                        app.state.services.keys = keys
                        rounds[label] += await timed(request, n // 10)
                for label, times in rounds.items():
                    means[label] = statistics.fmean(times)
                    print(line(f"GET /v1/workspace, key {label}", times))
    await store.dispose()
    print(
        f"{database}_check_us={statistics.fmean(checked):.0f} "
        f"{database}_request_us={means['read each time']:.0f} "
        f"{database}_request_cached_us={means['cached 30 s']:.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"]
    )
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    for database in args.database:
        if database == "sqlite":
            with tempfile.TemporaryDirectory() as directory:
                asyncio.run(run(database, f"sqlite+aiosqlite:///{directory}/keys.db", args.requests))
        else:
            # A schema of its own in the `test` database, dropped afterwards.
            schema = f"bench_keys_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            try:
                asyncio.run(run(database, f"{POSTGRES}?options=-csearch_path%3D{schema}", args.requests))
            finally:
                with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
