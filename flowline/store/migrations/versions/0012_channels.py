"""channels: provider settings per workspace; the delivery ledger learns addresses and feedback

workspaces.channels holds each channel's provider configuration (SMTP, an SMS or push HTTP
provider). Deliveries now say where a message went (address, sender, the provider's message id,
so delivery reports find their row) and what became of it (delivered, opened, clicked, bounced,
unsubscribed), with the flow and version that sent it for statistics. The index on
(workspace, recipient, channel, created_at) serves frequency caps: a count of one person's recent
sends on one channel across every flow.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23 03:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flowline.store.tables import Json, UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_FEEDBACK = ("delivered_at", "opened_at", "clicked_at", "bounced_at", "unsubscribed_at")


def upgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("channels", Json, nullable=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("flow_id", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("address", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("sender", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("provider_message_id", sa.String(length=200), nullable=True))
        for column in _FEEDBACK:
            batch.add_column(sa.Column(column, UTCDateTime(timezone=True), nullable=True))
    op.create_index(
        op.f("ix_deliveries_workspace_id_recipient_id_channel_created_at"),
        "deliveries",
        ["workspace_id", "recipient_id", "channel", "created_at"],
    )
    op.create_index(
        op.f("ix_deliveries_channel_provider_message_id"), "deliveries", ["channel", "provider_message_id"]
    )
    op.create_index(
        op.f("ix_deliveries_workspace_id_flow_id_version"),
        "deliveries",
        ["workspace_id", "flow_id", "version"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_deliveries_workspace_id_flow_id_version"), table_name="deliveries")
    op.drop_index(op.f("ix_deliveries_channel_provider_message_id"), table_name="deliveries")
    op.drop_index(op.f("ix_deliveries_workspace_id_recipient_id_channel_created_at"), table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        for column in reversed(_FEEDBACK):
            batch.drop_column(column)
        for column in ("provider_message_id", "sender", "address", "version", "flow_id"):
            batch.drop_column(column)
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("channels")
