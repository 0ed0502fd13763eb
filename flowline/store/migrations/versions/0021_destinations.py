"""destinations: a workspace's export destinations (CleverTap, webhooks) and their settings

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 08:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import flowline.store.tables

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "destinations",
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("settings", _JSON, nullable=False),
        sa.Column("created_at", flowline.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", flowline.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_destinations_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "id", name=op.f("pk_destinations")),
    )


def downgrade() -> None:
    op.drop_table("destinations")
