"""Repair JSON stored with NaN / Infinity before they were refused: each such number made null

SQLite kept them as bare tokens, which its JSON functions call malformed, so one such row failed
every segment query of its workspace. PostgreSQL (jsonb) could never hold them: nothing changes.
The same repair is ``python cli.py repair-json`` (flowline/store/json_repair.py).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 17:45:00
"""

from __future__ import annotations

from alembic import op

from flowline.store.json_repair import repair_non_finite

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    repair_non_finite(op.get_bind())


def downgrade() -> None:
    pass  # the numbers made null cannot be told apart from nulls stored as such
