"""Readable failures: hone_trials.traceback, hone_studies.failure, interrupted/cancelled

A failed trial's ``reason`` becomes one line (the exception's type and message); the full
traceback gets its own column. A study the failure policy stops gets status ``failed``
and its cause in ``hone_studies.failure``. Trials given back at shutdown or cancelled by
a stop were stored as failed; they become ``interrupted`` and ``cancelled`` (the count
triggers of 0002 move their counts, state being any string).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN on SQLite too: a batch rebuild would drop 0002's triggers.
    op.add_column("hone_trials", sa.Column("traceback", sa.Text(), nullable=True))
    op.add_column("hone_studies", sa.Column("failure", sa.Text(), nullable=True))
    op.execute("UPDATE hone_trials SET state = 'interrupted' WHERE state = 'failed' AND cause = 'shutdown'")
    op.execute("UPDATE hone_trials SET state = 'cancelled' WHERE state = 'failed' AND cause = 'cancelled'")


def downgrade() -> None:
    op.execute("UPDATE hone_trials SET state = 'failed' WHERE state IN ('interrupted', 'cancelled')")
    op.execute("UPDATE hone_studies SET status = 'stopped' WHERE status = 'failed'")
    op.drop_column("hone_studies", "failure")
    op.drop_column("hone_trials", "traceback")
