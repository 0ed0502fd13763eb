"""Work that one process at a time may do, across every process on one database.

Several API processes run the same background loops (the sweeper). Without a lease, sweeps that
coincide read the same unrouted events and route each of them twice (issue 18 measured 1,000 row
updates for 600 events with two APIs). On PostgreSQL the lease is a session-level advisory lock
held on a connection of its own for the whole piece of work, so it is freed when the work ends
or the process dies (the server drops its session). A SQLite file belongs to one process in
every supported topology (`make run`), so there the lease is always granted.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text

from flowline.store.database import Store


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (advisory locks take a bigint)."""
    return int.from_bytes(hashlib.sha256(f"flowline:{name}".encode()).digest()[:8], "big", signed=True)


@asynccontextmanager
async def exclusive(store: Store, name: str) -> AsyncIterator[bool]:
    """Whether this process holds the lease ``name`` for the block: False when another holds it
    now (the caller skips the work; the holder does it). Never waits."""
    if store.dialect != "postgresql":
        yield True
        return
    key = lock_key(name)
    async with store.engine.connect() as conn:
        held = bool(await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
        await conn.commit()  # the lock is the session's, not the transaction's
        try:
            yield held
        finally:
            if held:
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                await conn.commit()
