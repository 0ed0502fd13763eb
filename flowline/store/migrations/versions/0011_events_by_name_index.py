"""events by name and time: whole-audience segment queries read an event's window at once

An index on (workspace_id, name, timestamp, profile_id): an event condition's window (the
events of one name in a time range) is one range scan, and with profile_id in the key it needs
no table reads (an index-only scan on PostgreSQL, a covering index on SQLite). The count of a
segment groups that range by profile and joins it (flowline/conditions/sql.py compile_audience).

Revision ID: 0011
Revises: 0009
Create Date: 2026-11-23 01:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None

NAME = "ix_events_workspace_id_name_timestamp_profile_id"


def upgrade() -> None:
    op.create_index(NAME, "events", ["workspace_id", "name", "timestamp", "profile_id"])


def downgrade() -> None:
    op.drop_index(NAME, table_name="events")
