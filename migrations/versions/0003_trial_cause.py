"""hone_trials.cause: why a trial failed, as a value code can compare

Retry accounting compared the free-text reason with the worker's shutdown message in SQL;
a failure now carries its cause (shutdown, cancelled, timeout, out_of_memory, error, or
lease_expired when the reaper failed it). Existing failures get theirs from the reason
they were stored with.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on SQLite too: a batch rebuild would drop 0002's triggers.
    op.add_column("hone_trials", sa.Column("cause", sa.String(length=32), nullable=True))
    op.execute(
        """
        UPDATE hone_trials SET cause = CASE
            WHEN reason = 'worker shutting down' THEN 'shutdown'
            WHEN reason LIKE 'cancelled%' THEN 'cancelled'
            WHEN reason LIKE 'lease expired%' THEN 'lease_expired'
            WHEN reason LIKE 'timeout:%' THEN 'timeout'
            WHEN reason LIKE 'CUDA out of memory%' THEN 'out_of_memory'
            ELSE 'error'
        END
        WHERE state = 'failed'
        """
    )


def downgrade() -> None:
    # SQLite drops a column in place (3.35+); a batch rebuild would drop 0002's triggers.
    op.drop_column("hone_trials", "cause")
