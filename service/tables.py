"""hone's own tables (prefix ``hone_``), beside Optuna's in the same database.

Optuna's tables hold the search itself (trials, params, intermediate values) so that
optuna-dashboard shows every hone study. hone's tables hold what Optuna has no notion
of: the study spec and lifecycle, rounds and their boxes, leases, workers and tokens.
``hone_trials`` mirrors the columns that request paths filter, sort and count on, so no
request needs to load a study's trials from Optuna.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("hone stores aware datetimes only; use service.tables.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Study(Base):
    """A hone study. ``id`` equals the Optuna study's ``study_id``, so study 3 in the
    API is study 3 in optuna-dashboard."""

    __tablename__ = "hone_studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(512), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    direction: Mapped[str] = mapped_column(String(16))  # "minimize" | "maximize"
    metric: Mapped[str] = mapped_column(String(128))
    # "running" | "paused" | "stopped" | "completed" | "failed"
    status: Mapped[str] = mapped_column(String(16), default="running", index=True)
    # Why a failed study failed (service.failures), shown by the API, CLI and dashboard.
    failure: Mapped[str | None] = mapped_column(Text, nullable=True)
    current_round: Mapped[int] = mapped_column(Integer, default=1)
    max_concurrent: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Fair sharing between studies: the grant picks the study served longest ago.
    last_granted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DeletedStudy(Base):
    """The id of a study that is gone, deleted by hone or by another tool (optuna-dashboard's
    trash icon): a trigger on Optuna's ``studies`` (migration 0005) records it as it
    deletes hone's rows of that study. On SQLite, which would hand a deleted study's id
    to the next study, hone's new studies take ids above these, so an old id answers 404
    and never names another study."""

    __tablename__ = "hone_deleted_studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


class Round(Base):
    """One round of the coarse-to-fine search and the box its trials were sampled in."""

    __tablename__ = "hone_rounds"

    study_id: Mapped[int] = mapped_column(ForeignKey("hone_studies.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1-based
    budget: Mapped[int] = mapped_column(Integer)  # configurations in this round
    # {param: {"low", "high"} | {"choices": [...]}} — the box sampled in this round.
    box: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="open")  # "open" | "closed"
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    best_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    best_trial_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Epochs each trial of this round trains; None: objective.max_epochs. Raised by the
    # basic recipe's "train longer" (or POST /rounds' max_epochs), kept by later rounds.
    max_epochs: Mapped[int | None] = mapped_column(Integer, nullable=True)


_RUNNING = text("state = 'running'")


class Trial(Base):
    """One Optuna trial that hone created, with its lease.

    A configuration that is retried after a crash gets a new Optuna trial (a new row)
    with the same ``config_number``; round budgets count configurations, not rows.
    """

    __tablename__ = "hone_trials"
    __table_args__ = (
        UniqueConstraint("study_id", "number"),
        Index("ix_hone_trials_study_state", "study_id", "state"),
        Index("ix_hone_trials_study_round", "study_id", "round"),
        Index("ix_hone_trials_study_value", "study_id", "value"),
        # The running trials, for the reaper. No index may cover a column a heartbeat
        # writes (lease_expires_at, heartbeat_at): PostgreSQL then updates the row in place
        # rather than adding it to every index, 500 times a second at 5,000 leases (0010).
        Index("ix_hone_trials_running", "id", postgresql_where=_RUNNING, sqlite_where=_RUNNING),
        Index("ix_hone_trials_study_updated", "study_id", "updated_at"),
        # A configuration's attempts: round counts look for a newer attempt of each trial.
        Index("ix_hone_trials_study_config", "study_id", "config_number", "attempt"),
        Index("ix_hone_trials_finished", "finished_at"),  # /workers: trials of the last hour
        # Room on each page for a heartbeat's new row version next to the old (0010).
        {"postgresql_with": {"fillfactor": 80}},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("hone_studies.id", ondelete="CASCADE"))
    trial_id: Mapped[int] = mapped_column(Integer, unique=True)  # Optuna's global trial_id
    number: Mapped[int] = mapped_column(Integer)  # Optuna's per-study trial number
    round: Mapped[int] = mapped_column(Integer)
    config_number: Mapped[int] = mapped_column(Integer)  # number of the configuration's first attempt
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    # "running" | "complete" | "pruned" | "failed" | "interrupted" | "cancelled"
    state: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # one line: why it ended so
    traceback: Mapped[str | None] = mapped_column(Text, nullable=True)  # a failure's full text
    # A failure's cause (service.outcomes.Cause): shutdowns do not count against retries.
    cause: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lease_id: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Bumped on every change, so live views (server-sent events) poll for "what changed since".
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TrialCount(Base):
    """How many of a round's trials are in each state, kept by database triggers on
    ``hone_trials`` (migration 0002) in the transaction of every insert, update and delete.

    Summaries of a study with 100,000 trials read a handful of these rows instead of
    counting the trials; triggers rather than Python so that no writer (the lease
    protocol, the reaper, a delete, a bulk import) can change a trial and forget the count.
    """

    __tablename__ = "hone_trial_counts"

    study_id: Mapped[int] = mapped_column(ForeignKey("hone_studies.id", ondelete="CASCADE"), primary_key=True)
    round: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(16), primary_key=True)
    # The writing connection's share of the cell on PostgreSQL (migration 0009), so that
    # grants and results on different connections do not queue on one row; 0 on SQLite.
    # A count is the sum over stripes (one stripe may be negative).
    stripe: Mapped[int] = mapped_column(SmallInteger, primary_key=True, default=0)
    trials: Mapped[int] = mapped_column(Integer, default=0)
    # First attempts (attempt 0) among them: round budgets count configurations.
    configurations: Mapped[int] = mapped_column(Integer, default=0)


class Token(Base):
    """A bearer token, stored as its SHA-256 hash; the secret is shown once at creation."""

    __tablename__ = "hone_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))  # "read" | "worker" | "admin"
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # first characters, to recognise a token in lists
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Worker(Base):
    """A worker process as last seen by the service."""

    __tablename__ = "hone_workers"

    id: Mapped[str] = mapped_column(String(256), primary_key=True)
    host: Mapped[str | None] = mapped_column(String(256), nullable=True)
    devices: Mapped[list[str]] = mapped_column(JSON, default=list)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    current_study_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    current_trial_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
