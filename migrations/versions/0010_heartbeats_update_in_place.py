"""hone_trials: a heartbeat's update no longer touches any index (HOT on PostgreSQL)

A heartbeat writes ``lease_expires_at`` and ``heartbeat_at``. ``lease_expires_at`` was in
``ix_hone_trials_state_expiry`` (state, lease_expires_at), for the reaper, so on PostgreSQL
every heartbeat wrote a new version of its row into every one of the table's eleven
indexes, and left as many dead entries for vacuum: at 5,000 leases, 500 times a second,
half of PostgreSQL's CPU. Now no index covers a column a heartbeat writes, so PostgreSQL
updates the row in place (a heap-only tuple), given room on its page: the table keeps
a fifth of each new page free (``fillfactor``).

The reaper finds expired leases among the running trials, which ``ix_hone_trials_running``
lists (a partial index: the running trials only, at most one per worker slot), reading
each one's expiry from its row.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 22:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RUNNING = sa.text("state = 'running'")


def upgrade() -> None:
    op.drop_index("ix_hone_trials_state_expiry", table_name="hone_trials")
    op.create_index(
        "ix_hone_trials_running", "hone_trials", ["id"], postgresql_where=_RUNNING, sqlite_where=_RUNNING
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE hone_trials SET (fillfactor = 80)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE hone_trials RESET (fillfactor)")
    op.drop_index("ix_hone_trials_running", table_name="hone_trials")
    op.create_index("ix_hone_trials_state_expiry", "hone_trials", ["state", "lease_expires_at"])
