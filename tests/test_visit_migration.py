"""Migration 0020 on SQLite and PostgreSQL: the ledger's and the conversations' ``iteration`` column
is renamed ``visit`` with its values, the conversations' one-per-visit constraint still holds under
its new name, and the downgrade gives the old column back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from flowline.store.migrate import alembic_config, upgrade
from tests.databases import postgres_database, postgres_unavailable, sqlite_database


@pytest.fixture(params=["sqlite", "postgres"])
def database_at_0019(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database migrated to 0019 (before the rename)."""
    if request.param == "sqlite":
        with sqlite_database(tmp_path, "0019") as url:
            yield url
        return
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(reason)
    with postgres_database("0019") as url:
        yield url


def _sync(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("sqlite+aiosqlite", "sqlite"))


def _rows(conn: sa.Connection, column: str) -> tuple[int, int]:
    delivery = conn.execute(sa.text(f"SELECT {column} FROM deliveries")).scalar_one()
    conversation = conn.execute(sa.text(f"SELECT {column} FROM conversations")).scalar_one()
    return delivery, conversation


def test_0020_renames_iteration_to_visit_and_back(database_at_0019: str) -> None:
    url = database_at_0019
    engine = _sync(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO workspaces (id, name, webhook_secret, created_at) "
                    "VALUES ('w', 'w', 's', '2026-01-01')"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO deliveries (id, workspace_id, idempotency_key, journey_id, step_id, "
                    "iteration, recipient_id, channel, status, created_at) VALUES ('d', 'w', 'j/s/3/p', "
                    "'j', 's', 3, 'p', 'webhook', 'sent', '2026-01-01')"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO conversations (id, workspace_id, profile_id, journey_id, step_id, "
                    "iteration, status, created_at) VALUES ('c', 'w', 'p', 'j', 's', 3, 'open', '2026-01-01')"
                )
            )
        upgrade(url)
        with engine.begin() as conn:
            assert _rows(conn, "visit") == (3, 3)
            columns = {c["name"] for c in sa.inspect(conn).get_columns("conversations")}
            assert "visit" in columns and "iteration" not in columns
            uniques = {u["name"] for u in sa.inspect(conn).get_unique_constraints("conversations")}
            assert uniques == {"uq_conversations_journey_id_step_id_visit"}
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO conversations (id, workspace_id, profile_id, journey_id, step_id, "
                    "visit, status, created_at) VALUES ('c2', 'w', 'p', 'j', 's', 3, 'open', '2026-01-01')"
                )
            )
        engine.dispose()  # SQLite: the downgrade copies the tables this engine's pool may hold
        command.downgrade(alembic_config(url), "0019")
        with engine.begin() as conn:
            assert _rows(conn, "iteration") == (3, 3)
            uniques = {u["name"] for u in sa.inspect(conn).get_unique_constraints("conversations")}
            assert uniques == {"uq_conversations_journey_id_step_id_iteration"}
    finally:
        engine.dispose()
