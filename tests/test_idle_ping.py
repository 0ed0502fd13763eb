"""PostgreSQL connections are pinged only after sitting idle in the pool (flowline/store/idle_ping.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text

from flowline.store.database import Store


@pytest_asyncio.fixture
async def postgres_url(database_urls: dict[str, str | None]) -> AsyncIterator[str]:
    url = database_urls["postgresql"]
    if url is None:
        pytest.skip(str(database_urls["postgresql_reason"]))
    yield url


async def _backend_pid(store: Store) -> int:
    async with store.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_connection_back_at_work_at_once_is_not_pinged(postgres_url: str) -> None:
    # pool_pre_ping would ping at each of these checkouts: a round trip per transaction.
    store = Store(postgres_url, pool_size=1, max_overflow=0, ping_after_idle_s=60)
    try:
        pid = await _backend_pid(store)
        pings: list[object] = []
        original = store.engine.dialect.do_ping

        def counting_ping(dbapi_connection: Any) -> bool:
            pings.append(dbapi_connection)
            return original(dbapi_connection)

        store.engine.dialect.do_ping = counting_ping  # type: ignore[method-assign]
        for _ in range(5):
            assert await _backend_pid(store) == pid
        assert pings == []
    finally:
        await store.dispose()


async def test_an_idle_connection_the_server_dropped_is_replaced(postgres_url: str) -> None:
    # Every checkout counts as idle (0 s), as after a long quiet spell.
    store = Store(postgres_url, pool_size=1, max_overflow=0, ping_after_idle_s=0)
    killer = Store(postgres_url, pool_size=1, max_overflow=0)
    try:
        pid = await _backend_pid(store)
        async with killer.connect() as conn:
            assert (await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})).scalar_one()
        # The pooled connection is dead; the ping finds out and the pool opens a new one.
        assert await _backend_pid(store) != pid
    finally:
        await store.dispose()
        await killer.dispose()


async def test_without_the_idle_ping_a_dropped_connection_fails_its_next_use(postgres_url: str) -> None:
    # The same kill with a threshold never reached: the stale connection is used, and fails.
    # This is what the ping above prevents (and why the threshold stays short).
    store = Store(postgres_url, pool_size=1, max_overflow=0, ping_after_idle_s=3600)
    killer = Store(postgres_url, pool_size=1, max_overflow=0)
    try:
        pid = await _backend_pid(store)
        async with killer.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(Exception, match=r"terminat|closed|connection"):
            await _backend_pid(store)
        # The pool invalidated it: the next checkout is a fresh connection.
        assert await _backend_pid(store) != pid
    finally:
        await store.dispose()
        await killer.dispose()
