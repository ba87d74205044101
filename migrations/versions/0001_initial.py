"""hone's tables: studies, rounds, trials, tokens, workers

Revision ID: 0001
Revises:
Create Date: 2026-11-25 11:55:51.774526
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hone_studies",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("metric", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("current_round", sa.Integer(), nullable=False),
        sa.Column("max_concurrent", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_granted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hone_studies")),
        sa.UniqueConstraint("name", name=op.f("uq_hone_studies_name")),
    )
    with op.batch_alter_table("hone_studies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hone_studies_status"), ["status"], unique=False)

    op.create_table(
        "hone_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hone_tokens")),
        sa.UniqueConstraint("hash", name=op.f("uq_hone_tokens_hash")),
    )
    op.create_table(
        "hone_workers",
        sa.Column("id", sa.String(length=256), nullable=False),
        sa.Column("host", sa.String(length=256), nullable=True),
        sa.Column("devices", sa.JSON(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current_study_id", sa.Integer(), nullable=True),
        sa.Column("current_trial_number", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hone_workers")),
    )
    op.create_table(
        "hone_rounds",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("budget", sa.Integer(), nullable=False),
        sa.Column("box", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("best_value", sa.Float(), nullable=True),
        sa.Column("best_trial_number", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["hone_studies.id"],
            name=op.f("fk_hone_rounds_study_id_hone_studies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("study_id", "number", name=op.f("pk_hone_rounds")),
    )
    op.create_table(
        "hone_trials",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("config_number", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("last_step", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("lease_id", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker_id", sa.String(length=256), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["hone_studies.id"],
            name=op.f("fk_hone_trials_study_id_hone_studies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hone_trials")),
        sa.UniqueConstraint("lease_id", name=op.f("uq_hone_trials_lease_id")),
        sa.UniqueConstraint("study_id", "number", name=op.f("uq_hone_trials_study_id")),
        sa.UniqueConstraint("trial_id", name=op.f("uq_hone_trials_trial_id")),
    )
    with op.batch_alter_table("hone_trials", schema=None) as batch_op:
        batch_op.create_index("ix_hone_trials_state_expiry", ["state", "lease_expires_at"], unique=False)
        batch_op.create_index("ix_hone_trials_study_round", ["study_id", "round"], unique=False)
        batch_op.create_index("ix_hone_trials_study_state", ["study_id", "state"], unique=False)
        batch_op.create_index("ix_hone_trials_study_updated", ["study_id", "updated_at"], unique=False)
        batch_op.create_index("ix_hone_trials_study_value", ["study_id", "value"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("hone_trials", schema=None) as batch_op:
        batch_op.drop_index("ix_hone_trials_study_value")
        batch_op.drop_index("ix_hone_trials_study_updated")
        batch_op.drop_index("ix_hone_trials_study_state")
        batch_op.drop_index("ix_hone_trials_study_round")
        batch_op.drop_index("ix_hone_trials_state_expiry")

    op.drop_table("hone_trials")
    op.drop_table("hone_rounds")
    op.drop_table("hone_workers")
    op.drop_table("hone_tokens")
    with op.batch_alter_table("hone_studies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hone_studies_status"))

    op.drop_table("hone_studies")
