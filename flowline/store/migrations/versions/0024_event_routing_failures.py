"""event_routing_failures: events whose first routing failed, which a resend routes at once

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 05:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import flowline.store.tables

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_routing_failures",
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("failed_at", flowline.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_event_routing_failures_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "event_id", name=op.f("pk_event_routing_failures")),
    )


def downgrade() -> None:
    op.drop_table("event_routing_failures")
