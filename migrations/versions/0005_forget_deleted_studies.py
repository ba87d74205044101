"""A study deleted by another tool takes hone's rows with it; its id is never reused

optuna-dashboard's trash icon (or ``optuna.delete_study``) deletes a row of Optuna's
``studies``; hone's rows of that study stayed, and on SQLite, which reuses the highest
deleted id, the next Optuna study took that id and every ``hone study create`` answered
409. A trigger on ``studies`` (``service.optuna_tables``, the one owner of SQL on Optuna's
tables) now deletes hone's rows of a deleted study in the deleting transaction and
records its id in ``hone_deleted_studies``, above which hone numbers new studies on
SQLite (PostgreSQL's sequence never reuses an id). hone rows already orphaned, or whose
id now names another Optuna study, are removed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 07:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from service.optuna_tables import study_deletion

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hone_deleted_studies",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hone_deleted_studies")),
    )
    bind = op.get_bind()
    for (orphan,) in bind.execute(sa.text(study_deletion.ORPHANED_STUDIES)).all():
        for statement in study_deletion.forget_study(str(int(orphan))):
            op.execute(statement)
    study_deletion.install_deletion_trigger(op.execute, postgresql=bind.dialect.name == "postgresql")


def downgrade() -> None:
    study_deletion.drop_deletion_trigger(op.execute, postgresql=op.get_bind().dialect.name == "postgresql")
    op.drop_table("hone_deleted_studies")
