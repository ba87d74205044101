"""hone_trials (study_id, config_number, attempt): a configuration's attempts, indexed

A round's counts take each configuration's latest attempt: for every trial of the round
they look for a newer attempt of the same configuration. Without this index that lookup
scanned the study's trials once per trial, so a 10,000-trial round took about 10 s to
count on SQLite when it finished, under the grant lock.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 08:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_hone_trials_study_config", "hone_trials", ["study_id", "config_number", "attempt"])


def downgrade() -> None:
    op.drop_index("ix_hone_trials_study_config", table_name="hone_trials")
