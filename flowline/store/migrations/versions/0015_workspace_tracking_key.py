"""workspace tracking key (signs email tracking links)

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-23 03:35:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for workspaces made before: the first send or link that needs one creates it.
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("tracking_key", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("tracking_key")
