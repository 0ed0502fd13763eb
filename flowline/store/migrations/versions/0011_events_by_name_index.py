"""whole-audience segment queries: events by name and time; time zone names looked up fast

An index on events (workspace_id, name, timestamp, profile_id): an event condition's window
(the events of one name in a time range) is one range scan, and with profile_id in the key it
needs no table reads (index-only on PostgreSQL, covering on SQLite). A segment's count groups
that range by profile and joins it (flowline/conditions/sql.py compile_audience).

PostgreSQL: flowline_date_holds (0008) checked a zone name against the view pg_timezone_names,
which reads every zone file on each call (86 ms: a date condition over a million profiles
with a time zone would run for a day). The names are copied once into time_zone_names, and the
function looks them up there (the same names, as of this migration).

Revision ID: 0011
Revises: 0010 (0009 until 0010 is merged)
Create Date: 2026-11-23 01:00:00
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import op

revision = "0011"
# 0010 (segment_members) is written on another branch at the same time: follow it once it is
# here, so that either merge order leaves one head.
down_revision = "0010" if any(Path(__file__).parent.glob("0010_*.py")) else "0009"
branch_labels = None
depends_on = None

INDEX = "ix_events_workspace_id_name_timestamp_profile_id"
SLOW_LOOKUP = "EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = zone_name)"
FAST_LOOKUP = "EXISTS (SELECT 1 FROM time_zone_names WHERE name = zone_name)"


def _date_holds_0008() -> str:
    path = Path(__file__).with_name("0008_condition_functions.py")
    spec = importlib.util.spec_from_file_location("flowline_migration_0008", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text: str = module.DATE_HOLDS
    assert SLOW_LOOKUP in text
    return text


def upgrade() -> None:
    op.create_index(INDEX, "events", ["workspace_id", "name", "timestamp", "profile_id"])
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite: Python functions (flowline/conditions/sql_functions.py)
    op.execute("CREATE TABLE time_zone_names (name text PRIMARY KEY)")
    op.execute("INSERT INTO time_zone_names SELECT DISTINCT name FROM pg_timezone_names")
    op.execute(_date_holds_0008().replace(SLOW_LOOKUP, FAST_LOOKUP))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_date_holds_0008())
        op.execute("DROP TABLE time_zone_names")
    op.drop_index(INDEX, table_name="events")
