"""The worker registry (``hone_workers``): who has asked for work, from which host and
devices, when each was last heard from, and the trial each holds now (``GET /workers``).

A worker is recorded by the calls it makes anyway (lease, heartbeat, result); it never
registers on its own.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Insert,
    Select,
    Update,
    bindparam,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.tables import Trial, Worker


@dataclass(frozen=True)
class Visit:
    """A worker asking for work now: where from, on which devices, and the trial it was
    granted as ``(study_id, trial number)``, or None."""

    worker: str
    host: str | None
    devices: list[str]
    now: datetime
    holds: tuple[int, int] | None


def seen(session: Session, visits: Sequence[Visit]) -> None:
    """Record the visits: a worker's row made on its first, brought up to date after.

    Every grant (and every batch of grants) calls this under its study's lock: one upsert
    for all, built once per dialect, run on the session's connection (Core, no unit of
    work). A worker that asked twice in one batch keeps its later visit."""
    latest = {visit.worker: visit for visit in visits}
    rows = [
        {
            "id": visit.worker,
            "host": visit.host or None,  # an unnamed host keeps the name it had
            "devices": list(visit.devices),
            "first_seen": visit.now,
            "last_seen": visit.now,
            "current_study_id": visit.holds[0] if visit.holds else None,
            "current_trial_number": visit.holds[1] if visit.holds else None,
        }
        for visit in latest.values()
    ]
    if rows:
        session.connection().execute(_upsert(session.get_bind().dialect.name), rows)


@functools.cache
def _upsert(dialect: str) -> Insert:
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(Worker)
    new = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[Worker.id],
        set_={
            "host": func.coalesce(new.host, Worker.host),
            "devices": new.devices,
            "last_seen": new.last_seen,
            "current_study_id": new.current_study_id,
            "current_trial_number": new.current_trial_number,
        },
    )


def heard_from(worker: str | ColumnElement[str], *, now: datetime | BindParameter[datetime]) -> Update:
    """A heartbeat: the worker is alive. A statement, not its execution: the lease's heartbeat
    runs it inside its own single statement on PostgreSQL (:func:`service.leases.heartbeat`)."""
    return update(Worker).where(Worker.id == worker).values(last_seen=now)


def heard_from_each(workers: Select[str | None], *, now: BindParameter[datetime]) -> Update:
    """A batch of heartbeats (PostgreSQL): each of ``workers`` is alive. A record another
    transaction holds (a grant or a result of that worker's) is skipped rather than waited
    for: a batch must not wait on one worker, and ``last_seen`` catches up at its next call."""
    free = select(Worker.id).where(Worker.id.in_(workers)).with_for_update(skip_locked=True)
    return update(Worker).where(Worker.id.in_(free)).values(last_seen=now)


def release(session: Session, row: Trial) -> None:
    """The worker that held ``row``'s trial holds nothing now (unless it moved on already)."""
    if row.worker_id:
        session.connection().execute(
            _RELEASE, {"worker": row.worker_id, "study": row.study_id, "number": row.number}
        )


_RELEASE = (
    update(Worker)
    .where(
        Worker.id == bindparam("worker"),
        Worker.current_study_id == bindparam("study"),
        Worker.current_trial_number == bindparam("number"),
    )
    .values(current_study_id=None, current_trial_number=None)
)


def finished_since(session: Session, *, since: datetime) -> dict[str, int]:
    """Trials each worker finished (complete, pruned or failed) at or after ``since``."""
    query = (
        select(Trial.worker_id, func.count())
        .where(
            Trial.finished_at >= since,
            Trial.worker_id.is_not(None),
            # `state || ''`: not the state index. Without statistics SQLite would take it (it
            # matches nearly every trial) over the last hour's range of ix_hone_trials_finished.
            (Trial.state + "").in_(("complete", "pruned", "failed")),
        )
        .group_by(Trial.worker_id)
    )
    return {worker: int(count) for worker, count in session.execute(query) if worker is not None}


def lease_expiries(session: Session, *, holds: list[tuple[int, int]]) -> dict[tuple[int, int], datetime]:
    """When the running lease on each (study_id, trial number) expires, where one is held."""
    if not holds:
        return {}
    query = select(Trial.study_id, Trial.number, Trial.lease_expires_at).where(
        tuple_(Trial.study_id, Trial.number).in_(holds),
        Trial.state == "running",
        Trial.lease_expires_at.is_not(None),
    )
    return {(study, number): at for study, number, at in session.execute(query) if at is not None}
