"""api keys: a name, a scope (read, write, admin) and when each was last used

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 05:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flowline.store.tables import UTCDateTime

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every key made before could do everything (there was no key management in the API): they
    # become admin keys, so nothing a client does today is refused afterwards.
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column(
            "label", new_column_name="name", existing_type=sa.String(200), existing_nullable=False
        )
        batch.add_column(sa.Column("scope", sa.String(16), nullable=False, server_default="admin"))
        batch.add_column(sa.Column("last_used_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("scope")
        batch.alter_column(
            "name", new_column_name="label", existing_type=sa.String(200), existing_nullable=False
        )
