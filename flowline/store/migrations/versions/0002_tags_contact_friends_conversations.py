"""profile tags, do-not-contact, referrer and friends; conversations

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 21:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import flowline.store.tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("profiles") as batch:
        batch.add_column(sa.Column("tags", _JSON, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("do_not_contact", _JSON, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("referrer_id", sa.String(length=200), nullable=True))
    op.create_table(
        "profile_friends",
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.String(length=200), nullable=False),
        sa.Column("friend_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", flowline.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_profile_friends_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "profile_id", "friend_id", name=op.f("pk_profile_friends")),
    )
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.String(length=200), nullable=False),
        sa.Column("journey_id", sa.String(length=128), nullable=True),
        sa.Column("step_id", sa.String(length=64), nullable=True),
        sa.Column("iteration", sa.Integer(), nullable=True),
        sa.Column("tag", sa.String(length=200), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", flowline.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_conversations_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
        sa.UniqueConstraint(
            "journey_id", "step_id", "iteration", name=op.f("uq_conversations_journey_id_step_id_iteration")
        ),
    )
    op.create_index(
        op.f("ix_conversations_workspace_id_profile_id"), "conversations", ["workspace_id", "profile_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_conversations_workspace_id_profile_id"), table_name="conversations")
    op.drop_table("conversations")
    op.drop_table("profile_friends")
    with op.batch_alter_table("profiles") as batch:
        batch.drop_column("referrer_id")
        batch.drop_column("do_not_contact")
        batch.drop_column("tags")
