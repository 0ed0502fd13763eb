"""deliveries.iteration and conversations.iteration renamed visit (one word for a step's n-th visit)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 07:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

# The conversations' unique constraint is named after its columns (tables.py's naming convention).
OLD_UNIQUE = "uq_conversations_journey_id_step_id_iteration"
NEW_UNIQUE = "uq_conversations_journey_id_step_id_visit"


def upgrade() -> None:
    _rename("iteration", "visit", OLD_UNIQUE, NEW_UNIQUE)


def downgrade() -> None:
    _rename("visit", "iteration", NEW_UNIQUE, OLD_UNIQUE)


def _rename(old: str, new: str, old_unique: str, new_unique: str) -> None:
    # Values are kept as they are: ledger keys and event ids derived from the number do not change.
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column(old, new_column_name=new)
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("conversations", old, new_column_name=new)
        # Renames the index behind the constraint too.
        op.execute(f'ALTER TABLE conversations RENAME CONSTRAINT "{old_unique}" TO "{new_unique}"')
        return
    # SQLite: the table is copied, column renamed; then copied again with the constraint renamed
    # (alembic's batch mode drops a unique constraint whose column is renamed in the same batch).
    with op.batch_alter_table("conversations", recreate="always") as batch:
        batch.alter_column(old, new_column_name=new)
    with op.batch_alter_table("conversations", recreate="always") as batch:
        batch.drop_constraint(old_unique, type_="unique")
        batch.create_unique_constraint(new_unique, ["journey_id", "step_id", new])
