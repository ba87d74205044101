"""The worker registry (``hone_workers``): who has asked for work, from which host and
devices, when each was last heard from, and the trial each holds now (``GET /workers``).

A worker is recorded by the calls it makes anyway (lease, heartbeat, result); it never
registers on its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Update, bindparam, func, insert, select, tuple_, update
from sqlalchemy.orm import Session

from service.tables import Trial, Worker


def seen(
    session: Session,
    *,
    worker: str,
    host: str | None,
    devices: list[str] | None,
    now: datetime,
    holds: tuple[int, int] | None,
) -> None:
    """Record that ``worker`` asked for work now and holds ``(study_id, trial number)``, or nothing.

    Every grant calls this under its study's lock, so the statements are built once and run
    on the session's connection (Core, no unit of work)."""
    changes: dict[str, Any] = {
        "last_seen": now,
        "current_study_id": holds[0] if holds else None,
        "current_trial_number": holds[1] if holds else None,
    }
    if host:
        changes["host"] = host
    if devices is not None:
        changes["devices"] = list(devices)
    connection = session.connection()
    result = connection.execute(_SEEN, {"worker": worker, **changes})
    if result.rowcount == 0:
        connection.execute(_INSERT, {"id": worker, "host": host, "devices": [], "first_seen": now, **changes})


_INSERT = insert(Worker)
# The SET clause is the columns given at execution (``changes``).
_SEEN = update(Worker).where(Worker.id == bindparam("worker"))


def heard_from(worker: str | ColumnElement[str], *, now: datetime | BindParameter[datetime]) -> Update:
    """A heartbeat: the worker is alive. A statement, not its execution: the lease's heartbeat
    runs it inside its own single statement on PostgreSQL (:func:`service.leases.heartbeat`)."""
    return update(Worker).where(Worker.id == worker).values(last_seen=now)


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
