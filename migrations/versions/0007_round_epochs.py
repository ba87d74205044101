"""hone_rounds.max_epochs: the epochs each trial of a round trains

The basic recipe's "train longer" (issue #23) raises the epochs of the next round, within
objective.max_epochs_limit; NULL (every round before this revision) means the
objective's max_epochs.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain add_column, not a batch rebuild: rebuilding would drop 0002's triggers on SQLite.
    op.add_column("hone_rounds", sa.Column("max_epochs", sa.Integer(), nullable=True))


def downgrade() -> None:
    # SQLite drops a column in place (3.35+), as 0003 and 0004 do.
    op.drop_column("hone_rounds", "max_epochs")
