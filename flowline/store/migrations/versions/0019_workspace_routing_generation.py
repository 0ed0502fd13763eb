"""workspace routing generation (flows and segments changed through any process)

Revision ID: 0019
Revises: 0017 (0018 once merged)
Create Date: 2026-12-04 17:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
# TODO(merge): "0018" once migration 0018 (another branch) is merged; "0017" until then.
down_revision = "0017"
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
