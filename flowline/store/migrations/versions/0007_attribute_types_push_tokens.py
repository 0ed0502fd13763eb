"""declared attribute types and push tokens

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 23:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flowline.store.tables import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _workspace_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["workspace_id"],
        ["workspaces.id"],
        name=op.f(f"fk_{table}_workspace_id_workspaces"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "attribute_types",
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        _workspace_fk("attribute_types"),
        sa.PrimaryKeyConstraint("workspace_id", "name", name=op.f("pk_attribute_types")),
    )
    op.create_table(
        "push_tokens",
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.String(length=200), nullable=False),
        sa.Column("token", sa.String(length=500), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        _workspace_fk("push_tokens"),
        sa.PrimaryKeyConstraint("workspace_id", "profile_id", "token", name=op.f("pk_push_tokens")),
    )


def downgrade() -> None:
    op.drop_table("push_tokens")
    op.drop_table("attribute_types")
