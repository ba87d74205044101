"""hone_trials (finished_at): the trials that finished lately, indexed

``GET /workers`` counts each worker's trials of the last hour, and hone's fleet page asks
for it every 5 s. Without this index that count read every trial of every study, growing
with the history; with it, the last hour's rows only (tests/api/test_large_study.py holds
it to its time before 100,000 trials of history).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 13:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_hone_trials_finished", "hone_trials", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_hone_trials_finished", table_name="hone_trials")
