"""a partial index for the sweeper: events whose routing did not finish

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    where = sa.text("routed_at IS NULL")
    op.create_index(
        "ix_events_unrouted", "events", ["received_at"], postgresql_where=where, sqlite_where=where
    )


def downgrade() -> None:
    op.drop_index("ix_events_unrouted", table_name="events")
