"""export_records: the outbox of export destinations (export steps, exported events)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 14:10:07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import flowline.store.tables

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_records",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("destination_id", sa.String(length=200), nullable=False),
        sa.Column("record_key", sa.String(length=700), nullable=False),
        sa.Column("flow_id", sa.String(length=200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("step_id", sa.String(length=200), nullable=True),
        sa.Column("journey_id", sa.String(length=200), nullable=True),
        sa.Column("profile_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=True),
        sa.Column("ts", flowline.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", flowline.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_until", flowline.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claim", sa.String(length=40), nullable=True),
        sa.Column("code", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", flowline.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", flowline.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_export_records_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_records")),
        sa.UniqueConstraint(
            "workspace_id",
            "destination_id",
            "record_key",
            name=op.f("uq_export_records_workspace_id_destination_id_record_key"),
        ),
    )
    with op.batch_alter_table("export_records", schema=None) as batch_op:
        batch_op.create_index(
            "ix_export_records_open",
            ["workspace_id", "destination_id", "next_attempt_at"],
            unique=False,
            sqlite_where=sa.text("status IN ('pending', 'sending')"),
            postgresql_where=sa.text("status IN ('pending', 'sending')"),
        )
        batch_op.create_index(
            batch_op.f("ix_export_records_workspace_id_flow_id_version_step_id_status"),
            ["workspace_id", "flow_id", "version", "step_id", "status"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("export_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_export_records_workspace_id_flow_id_version_step_id_status"))
        batch_op.drop_index(
            "ix_export_records_open",
            sqlite_where=sa.text("status IN ('pending', 'sending')"),
            postgresql_where=sa.text("status IN ('pending', 'sending')"),
        )

    op.drop_table("export_records")
