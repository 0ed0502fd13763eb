"""push_sends: each device a push delivery reached, with its provider message id

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-23 06:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flowline.store.tables import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "push_sends",
        sa.Column("delivery_id", sa.String(length=40), nullable=False),
        sa.Column("token", sa.String(length=500), nullable=False),
        sa.Column("provider_message_id", sa.String(length=200), nullable=True),
        sa.Column("sent_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_push_sends_delivery_id_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("delivery_id", "token", name=op.f("pk_push_sends")),
    )
    op.create_index(op.f("ix_push_sends_provider_message_id"), "push_sends", ["provider_message_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_push_sends_provider_message_id"), table_name="push_sends")
    op.drop_table("push_sends")
