"""The databases tests run on: SQLite always, PostgreSQL where a server answers on 127.0.0.1:5432."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from flowline.store.migrate import upgrade

POSTGRES_DSN = os.environ.get("FLOWLINE_TEST_POSTGRES", "host=127.0.0.1 port=5432 dbname=test")


def postgres_unavailable() -> str | None:
    """None if PostgreSQL answers, else the reason (shown when its tests are skipped)."""
    try:
        with psycopg.connect(POSTGRES_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        return f"PostgreSQL is not reachable at '{POSTGRES_DSN}': {error}".strip()
    return None


@contextmanager
def sqlite_database(directory: Path, revision: str = "head") -> Iterator[str]:
    url = f"sqlite+aiosqlite:///{directory / 'flowline-test.db'}"
    upgrade(url, revision)
    yield url


@contextmanager
def postgres_database(revision: str = "head") -> Iterator[str]:
    """A schema of its own in the ``test`` database, dropped afterwards, so runs never collide."""
    schema = f"flowline_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    params = dict(item.split("=", 1) for item in POSTGRES_DSN.split())
    host, port, dbname = (
        params.get("host", "127.0.0.1"),
        params.get("port", "5432"),
        params.get("dbname", "test"),
    )
    user = params.get("user", "")
    url = f"postgresql+psycopg://{user}@{host}:{port}/{dbname}?options=-csearch_path%3D{schema}"
    try:
        upgrade(url, revision)
        yield url
    finally:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
