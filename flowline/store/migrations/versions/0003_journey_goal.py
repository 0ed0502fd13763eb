"""journey goal conversions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 21:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import flowline.store.tables

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("journeys") as batch:
        batch.add_column(
            sa.Column("converted_at", flowline.store.tables.UTCDateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("goal_event_id", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("journeys") as batch:
        batch.drop_column("goal_event_id")
        batch.drop_column("converted_at")
