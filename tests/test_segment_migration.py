"""Migration 0010 on SQLite: flows published before with profile_change / segment_entry triggers
get their trigger event (so events start them from now on), segments saved before get no
baseline yet (their first evaluation computes it), and it downgrades cleanly."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command

from flowline.store.migrate import alembic_config, upgrade


def test_0010_fills_trigger_events_and_downgrades(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "0009")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO workspaces (id, name, webhook_secret, created_at) "
                "VALUES ('w', 'w', 's', '2026-01-01')"
            )
        )
        for flow_id, kind, event in (
            ("a", "profile_change", None),
            ("b", "segment_entry", None),
            ("c", "event", "x"),
        ):
            conn.execute(
                sa.text(
                    "INSERT INTO flows (workspace_id, id, name, status, draft, created_at, updated_at) "
                    "VALUES ('w', :id, 'f', 'running', '{}', '2026-01-01', '2026-01-01')"
                ),
                {"id": flow_id},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO flow_versions (workspace_id, flow_id, version, document, trigger_type, "
                    "trigger_event, published_at) VALUES ('w', :id, 1, '{}', :kind, :event, '2026-01-01')"
                ),
                {"id": flow_id, "kind": kind, "event": event},
            )
        conn.execute(
            sa.text(
                "INSERT INTO segments (workspace_id, id, name, rule, created_at, updated_at) "
                "VALUES ('w', 's', 's', '{\"tag\": \"x\"}', '2026-01-01', '2026-01-01')"
            )
        )
    upgrade(url)
    with engine.connect() as conn:
        events = dict(conn.execute(sa.text("SELECT flow_id, trigger_event FROM flow_versions")).all())
        assert events == {"a": "profile_changed", "b": "segment_entered", "c": "x"}
        assert conn.execute(sa.text("SELECT evaluated_at FROM segments")).scalar_one() is None
        assert conn.execute(sa.text("SELECT count(*) FROM segment_members")).scalar_one() == 0
    command.downgrade(alembic_config(url), "0009")
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        assert "segment_members" not in tables
        assert "evaluated_at" not in {c["name"] for c in sa.inspect(conn).get_columns("segments")}
    engine.dispose()
