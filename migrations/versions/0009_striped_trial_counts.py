"""hone_trial_counts striped: each connection counts in its own rows on PostgreSQL

0002's counters kept one row per (study, round, state). Every grant adds to its round's
"running" row and every result takes from it, so on PostgreSQL all of a round's grants and
results queued on that one row lock, each held until its transaction committed: with 16
workers, on average three results were waiting for it (issue #24). Now a row is also keyed
by a stripe, the writing connection's backend pid modulo 16: writers on different
connections touch different rows, and a count is the sum over stripes. A stripe may hold a
negative count (a trial granted on one connection and finished on another); the sums are
exact, as before, because every change is still made by a trigger in the writer's
transaction.

Lock order is as in 0002, within one stripe: a transaction writes one stripe only (its
connection's), and takes "running" before a final state.

SQLite has one writer at a time and a single stripe (0).

The counters are rebuilt from the trials, as 0002 built them: the triggers first, so on
PostgreSQL no writer changes a trial between them and the count.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 19:30:00
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STRIPES = 16

_UNSTRIPED = importlib.import_module("migrations.versions.0002_trial_counts")

# Adds ``sign`` to the cell's counters on this connection's stripe. A removal whose study is
# gone (a cascade from hone_studies) has no counters left to keep.
_CHANGE = """
INSERT INTO hone_trial_counts (study_id, round, state, stripe, trials, configurations)
SELECT {row}.study_id, {row}.round, {row}.state, {stripe}, {sign}1,
       CASE WHEN {row}.attempt = 0 THEN {sign}1 ELSE 0 END
{guard}
ON CONFLICT (study_id, round, state, stripe) DO UPDATE
SET trials = hone_trial_counts.trials + excluded.trials,
    configurations = hone_trial_counts.configurations + excluded.configurations;
"""
_STUDY_EXISTS = "WHERE EXISTS (SELECT 1 FROM hone_studies WHERE id = OLD.study_id)"

_PG_REMOVE = _CHANGE.format(row="OLD", stripe="_stripe", sign="-", guard=_STUDY_EXISTS)
_PG_ADD = _CHANGE.format(row="NEW", stripe="_stripe", sign="", guard="WHERE true")
# SQLite keeps every count on stripe 0, where the row a removal takes from always exists.
_SQLITE_REMOVE = """
UPDATE hone_trial_counts
SET trials = trials - 1, configurations = configurations - CASE WHEN OLD.attempt = 0 THEN 1 ELSE 0 END
WHERE study_id = OLD.study_id AND round = OLD.round AND state = OLD.state AND stripe = 0;
"""
# "WHERE true": SQLite reads an upsert's SELECT without a WHERE as a join's ON.
_SQLITE_ADD = _CHANGE.format(row="NEW", stripe="0", sign="", guard="WHERE true")
_COUNTED_CHANGE = _UNSTRIPED._COUNTED_CHANGE

_SQLITE = [
    f"CREATE TRIGGER hone_trials_count_insert AFTER INSERT ON hone_trials BEGIN {_SQLITE_ADD} END",
    f"CREATE TRIGGER hone_trials_count_delete AFTER DELETE ON hone_trials BEGIN {_SQLITE_REMOVE} END",
    "CREATE TRIGGER hone_trials_count_update AFTER UPDATE OF study_id, round, state, attempt "
    f"ON hone_trials WHEN {_COUNTED_CHANGE} BEGIN {_SQLITE_REMOVE} {_SQLITE_ADD} END",
]
_POSTGRESQL = [
    f"""
CREATE FUNCTION hone_count_trial() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    _stripe smallint := pg_backend_pid() % {STRIPES};
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN {_PG_REMOVE}
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN {_PG_ADD}
    END IF;
    RETURN NULL;
END
$$
""",
    *_UNSTRIPED._POSTGRESQL[1:],  # the same three triggers, calling the new function
]
_BACKFILL = """
INSERT INTO hone_trial_counts (study_id, round, state, stripe, trials, configurations)
SELECT study_id, round, state, 0, count(*), sum(CASE WHEN attempt = 0 THEN 1 ELSE 0 END)
FROM hone_trials GROUP BY study_id, round, state
"""


def upgrade() -> None:
    _UNSTRIPED.downgrade()  # 0002's triggers, function and table
    op.create_table(
        "hone_trial_counts",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("stripe", sa.SmallInteger(), nullable=False),
        sa.Column("trials", sa.Integer(), nullable=False),
        sa.Column("configurations", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["hone_studies.id"],
            name=op.f("fk_hone_trial_counts_study_id_hone_studies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("study_id", "round", "state", "stripe", name=op.f("pk_hone_trial_counts")),
    )
    statements = _POSTGRESQL if op.get_bind().dialect.name == "postgresql" else _SQLITE
    for statement in statements:
        op.execute(statement)
    op.execute(_BACKFILL)


def downgrade() -> None:
    _UNSTRIPED.downgrade()  # the same names: triggers, function and table
    _UNSTRIPED.upgrade()
