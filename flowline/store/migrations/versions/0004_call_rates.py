"""call_rates: shared rate limits of call_api steps

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_rates",
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("flow_id", sa.String(length=200), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("period_seconds", sa.Integer(), nullable=False),
        sa.Column("window_index", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_call_rates_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "workspace_id", "flow_id", "step_id", "period_seconds", name=op.f("pk_call_rates")
        ),
    )


def downgrade() -> None:
    op.drop_table("call_rates")
