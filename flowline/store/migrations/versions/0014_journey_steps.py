"""journey_steps: each journey's path, one row per step visit, for flow statistics and inspection

Revision ID: 0014
Revises: 0012
Create Date: 2026-11-23 03:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flowline.store.tables import UTCDateTime

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journey_steps",
        sa.Column("journey_id", sa.String(length=128), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("flow_id", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("step_type", sa.String(length=32), nullable=False),
        sa.Column("entered_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("left_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("branch", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_journey", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_journey_steps_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("journey_id", "seq", name=op.f("pk_journey_steps")),
    )
    op.create_index(
        op.f("ix_journey_steps_workspace_id_flow_id_version_step_id"),
        "journey_steps",
        ["workspace_id", "flow_id", "version", "step_id"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_journey_steps_workspace_id_flow_id_version_step_id"), table_name="journey_steps")
    op.drop_table("journey_steps")
