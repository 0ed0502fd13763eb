"""Engines for SQLite (the embedded default) and PostgreSQL, and dialect-neutral helpers."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Table, any_, bindparam, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from flowline import json_values
from flowline.conditions import sql_functions
from flowline.secret_box import PLAIN, SecretBox
from flowline.store.idle_ping import ping_when_idle


def utcnow() -> datetime:
    return datetime.now(UTC)


def one_of(dialect: str, column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """``column IN values``. On PostgreSQL ``column = ANY(array)``: one parameter, so the statement's
    text is short and the same for any number of values (psycopg parses a long text anew each time)."""
    if dialect == "postgresql":
        return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))
    return column.in_(list(values))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the one writer; busy_timeout queues writers instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # Compiled conditions (flowline/conditions/sql.py) call these.
    sql_functions.register(dbapi_connection)


# Each engine's secret box, for the code that reads and writes secrets with a connection only.
_boxes: weakref.WeakKeyDictionary[Engine, SecretBox] = weakref.WeakKeyDictionary()


def secret_box(conn: AsyncConnection) -> SecretBox:
    """The box that seals and opens the secrets stored through ``conn`` (its store's keys)."""
    return _boxes.get(conn.sync_engine, PLAIN)


async def _end(conn: AsyncConnection, *, rollback: bool) -> None:
    try:
        if rollback:
            await conn.rollback()
    finally:
        await conn.close()


class Store:
    """The database handle every component shares: an async engine plus a few helpers.

    ``secret_keys`` (``FLOWLINE_PAYLOAD_KEYS``): the keys that seal the secrets of channel and
    destination settings (flowline/secret_box.py); empty: they are stored in clear."""

    def __init__(
        self, url: str, *, secret_keys: str = "", ping_after_idle_s: float = 10.0, **engine_options: Any
    ) -> None:
        self.url = make_url(url)
        self.secrets = SecretBox.from_setting(secret_keys)
        self._writer_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        if self.url.get_backend_name() == "sqlite" and self.url.database not in (None, "", ":memory:"):
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = {}
        if self.url.get_backend_name() == "postgresql":
            options.update(pool_size=10, max_overflow=20)
            # psycopg prepares a statement run five times, and PostgreSQL may then plan it once for
            # any parameters: for ``id = ANY(:ids)`` that plan scanned all 20,000 profiles comparing
            # each with the 500 ids of a batch (0.3-1 s instead of 5 ms). Plans for the values given.
            given = self.url.query.get("options", "")
            given = given if isinstance(given, str) else " ".join(given)
            options["connect_args"] = {"options": f"{given} -c plan_cache_mode=force_custom_plan".strip()}
        # Every JSON and JSONB column is written through json_values.dumps: a NaN or Infinity raises
        # (and the transaction rolls back) instead of leaving text SQLite calls malformed JSON.
        options["json_serializer"] = json_values.dumps
        options.update(engine_options)
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        _boxes[self.engine.sync_engine] = self.secrets
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            # A server can drop connections that sat idle in the pool; a SQLite file cannot.
            ping_when_idle(self.engine.sync_engine, ping_after_idle_s)

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        if self.dialect != "sqlite":
            async with self.engine.begin() as conn:
                yield conn
            return
        # SQLite has one writer. Left to its busy handler, a process's waiting transactions poll
        # the lock with sleeps of up to 100 ms and whoever polls at the right moment wins: under
        # load some waited seconds (bench/RESULTS.md, latency). Queued here first, in order, they
        # leave one contender per process.
        async with self._sqlite_writer():
            conn = await self.engine.connect()
            try:
                await conn.begin()
                yield conn
                await conn.commit()
            except BaseException:
                # Shielded: a task cancelled mid-transaction (an activity when its worker stops)
                # must still roll back and give the connection back. Interrupted, the rollback
                # left the connection holding SQLite's write lock, and every other writer of the
                # process failed with "database is locked" after busy_timeout.
                await asyncio.shield(_end(conn, rollback=True))
                raise
            else:
                await asyncio.shield(_end(conn, rollback=False))

    def _sqlite_writer(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._writer_locks.get(loop)
        if lock is None:
            lock = self._writer_locks[loop] = asyncio.Lock()
        return lock

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    def insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """An INSERT that can take ``on_conflict_do_nothing``/``do_update`` on either database."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    async def dispose(self) -> None:
        await self.engine.dispose()


def sync_url(url: str) -> str:
    """The same database through a synchronous driver (Alembic runs synchronously)."""
    parsed = make_url(url)
    driver = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}[parsed.get_backend_name()]
    return parsed.set(drivername=driver).render_as_string(hide_password=False)
