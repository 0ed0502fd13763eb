"""workspace routing generation (flows and segments changed through any process)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 17:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Bumped by each publish, stop and drain and each segment saved; every process compares it
    # with the one its caches were read at (flowline/store/flows.py, routing_generation).
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("routing_generation", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("routing_generation")
