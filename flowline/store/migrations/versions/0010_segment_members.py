"""segment_members: who is in each segment, kept by re-evaluation; segments.evaluated_at

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 00:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import flowline.store.tables

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segment_members",
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("segment_id", sa.String(length=200), nullable=False),
        sa.Column("profile_id", sa.String(length=200), nullable=False),
        sa.Column("entered_at", flowline.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id", "segment_id"],
            ["segments.workspace_id", "segments.id"],
            name=op.f("fk_segment_members_workspace_id_segments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "segment_id", "profile_id", name=op.f("pk_segment_members")),
    )
    with op.batch_alter_table("segments") as batch_op:
        # NULL until the first computation of the membership (the baseline, which writes no events).
        batch_op.add_column(
            sa.Column("evaluated_at", flowline.store.tables.UTCDateTime(timezone=True), nullable=True)
        )
    # Flows published before these triggers started journeys: list them by their system event.
    for trigger_type, event in (("profile_change", "profile_changed"), ("segment_entry", "segment_entered")):
        op.execute(
            sa.text(
                "UPDATE flow_versions SET trigger_event = :event "
                "WHERE trigger_type = :type AND trigger_event IS NULL"
            ).bindparams(event=event, type=trigger_type)
        )


def downgrade() -> None:
    with op.batch_alter_table("segments") as batch_op:
        batch_op.drop_column("evaluated_at")
    op.drop_table("segment_members")
