"""A study deleted by another tool takes hone's rows with it; its id is never reused

optuna-dashboard's trash icon (or ``optuna.delete_study``) deletes a row of Optuna's
``studies``; hone's rows of that study stayed, and on SQLite, which reuses the highest
deleted id, the next Optuna study took that id and every ``hone study create`` answered
409. A trigger on ``studies`` now deletes hone's rows of a deleted study in the deleting
transaction, whoever deletes it: a trigger, not a foreign key, because SQLite enforces
foreign keys only on connections that ask for it and optuna-dashboard's does not. It
records the id in ``hone_deleted_studies``, above which hone's new studies are numbered on
SQLite (PostgreSQL's sequence never reuses an id). hone rows already orphaned, or whose id
now names another Optuna study, are removed.

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-03 07:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TRIGGER = "hone_forget_deleted_study"


def _forget(study_id: str) -> str:
    """Statements deleting hone's rows of one study; trials first, so 0002's counter
    triggers see their counts go before the counter rows do."""
    return f"""
DELETE FROM hone_trials WHERE study_id = {study_id};
DELETE FROM hone_trial_counts WHERE study_id = {study_id};
DELETE FROM hone_rounds WHERE study_id = {study_id};
UPDATE hone_workers SET current_study_id = NULL, current_trial_number = NULL
WHERE current_study_id = {study_id};
DELETE FROM hone_studies WHERE id = {study_id};
INSERT INTO hone_deleted_studies (id) VALUES ({study_id}) ON CONFLICT (id) DO NOTHING;
"""


_SQLITE = f"CREATE TRIGGER {_TRIGGER} AFTER DELETE ON studies BEGIN {_forget('OLD.study_id')} END"
_POSTGRESQL = [
    f"""
CREATE FUNCTION {_TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_forget("OLD.study_id")}
    RETURN NULL;
END
$$
""",
    f"CREATE TRIGGER {_TRIGGER} AFTER DELETE ON studies FOR EACH ROW EXECUTE FUNCTION {_TRIGGER}()",
]
# A hone study whose Optuna study is gone, or whose id now names a different Optuna study.
_ORPHANS = """
SELECT id FROM hone_studies WHERE NOT EXISTS (
    SELECT 1 FROM studies WHERE studies.study_id = hone_studies.id AND studies.study_name = hone_studies.name
)
"""


def upgrade() -> None:
    op.create_table(
        "hone_deleted_studies",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hone_deleted_studies")),
    )
    bind = op.get_bind()
    for (orphan,) in bind.execute(sa.text(_ORPHANS)).all():
        for statement in _forget(str(int(orphan))).strip().split(";"):
            if statement.strip():
                op.execute(statement)
    if bind.dialect.name == "postgresql":
        for statement in _POSTGRESQL:
            op.execute(statement)
    else:
        op.execute(_SQLITE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {_TRIGGER} ON studies")
        op.execute(f"DROP FUNCTION IF EXISTS {_TRIGGER}()")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {_TRIGGER}")
    op.drop_table("hone_deleted_studies")
