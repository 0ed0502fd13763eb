"""deliveries.failed_at: when a provider's report said a sent message failed

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-23 06:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flowline.store.tables import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A report's failure is kept beside the row's status, which stays what the send made it: the
    # status drives the send's retries, the column the statistics.
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("failed_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("failed_at")
