"""The lease protocol: a worker's claim on one trial, and keeping it alive.

A **lease** is a worker's claim on one Optuna trial of a running study, valid until
``lease_expires_at``. Its life has one module per stage:

1. :mod:`service.grants` hands it out (a trial drawn, popped from the queue or asked);
2. here: the worker heartbeats every ``heartbeat_interval`` seconds, which extends it by
   ``grace_period``; a lease not extended in time is failed by the reaper
   (:mod:`service.reaper`) and its configuration re-queued;
3. :mod:`service.pruning` records each step's value and asks the study's pruner;
4. :mod:`service.outcomes` ends it: complete, pruned, or failed (and maybe retried).

Every call on a lease that is over (finished, expired, superseded) is refused with 409,
so a late result never overwrites anything. The worker registry
(:mod:`service.worker_registry`) is kept up to date by these calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from sqlalchemy import Connection, Select, any_, bindparam, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from service import rounds, study_locks, worker_registry
from service.backend import Backend
from service.errors import Conflict, NotFound
from service.tables import Study, Trial, UTCDateTime


@dataclass(frozen=True)
class HeartbeatReply:
    expires_at: datetime
    cancel: bool


def lease_row(session: Session, lease_id: str, *, lock: bool = False) -> Trial:
    """The trial a lease is on (404 when no such lease was ever granted)."""
    row = session.scalars(_LOCKED_LEASE_ROW if lock else _LEASE_ROW, {"lease": lease_id}).one_or_none()
    if row is None:
        raise NotFound(f"no lease {lease_id}")
    return row


# Built once: every report and result reads its lease's row.
_LEASE_ROW = select(Trial).where(Trial.lease_id == bindparam("lease"))
_LOCKED_LEASE_ROW = _LEASE_ROW.with_for_update()


def lease_row_for_result(session: Session, lease_id: str, *, study_lock: bool) -> tuple[Trial, bool]:
    """The lease's trial, locked, for a result; and whether its study's lock was taken too
    (always when ``study_lock``, else when the trial's round has no room left, so the
    result may end it). The study's lock comes first, before any row's."""
    found = session.connection().execute(_STUDY_AND_ROUND, {"lease": lease_id}).first()
    if found is None:
        raise NotFound(f"no lease {lease_id}")
    study_id, round = found
    if not study_lock:
        study_lock = rounds.room_in_round(session, study_id=study_id, round=round) <= 0
    if study_lock:
        study_locks.lock_study(session, study_id)
    return lease_row(session, lease_id, lock=True), study_lock


_STUDY_AND_ROUND = select(Trial.study_id, Trial.round).where(Trial.lease_id == bindparam("lease"))


def check_live(row: Trial, now: datetime) -> None:
    """409 unless the lease's trial is running and the lease has not expired."""
    if row.state != "running":
        raise Conflict(f"lease {row.lease_id} is over: trial {row.number} is {row.state}")
    if row.lease_expires_at is None or row.lease_expires_at < now:
        raise Conflict(f"lease {row.lease_id} expired at {row.lease_expires_at}; the trial will be re-queued")


def heartbeat(backend: Backend, *, lease_id: str, now: datetime) -> HeartbeatReply:
    """Extend a live lease by ``grace_period``; ``cancel`` tells the worker the study was
    stopped or failed. 404 for a lease never granted, else 409 when it is not live.

    The one call a whole fleet makes every ``heartbeat_interval``, so it is one prepared
    statement on PostgreSQL (extend the lease, mark its worker seen, read the study's
    status) on a Core connection: building the query and the ORM's per-row work cost more
    than the SQL (``python -m benchmarks.fleet_scale --profile``). The API serves
    heartbeats in batches (:func:`heartbeats`); this one waits for its lease's row if
    another transaction holds it, which a batch does not.
    """
    expires = now + timedelta(seconds=backend.settings.grace_period)
    # Not named after columns: an UPDATE's parameters named like a column would be SET too.
    values = {"lease": lease_id, "at": now, "until": expires}
    with backend.db.engine.begin() as conn:
        if backend.db.is_sqlite:
            status = _extend_stepwise(conn, values)
        else:
            status = conn.execute(_EXTEND_IN_ONE, values).scalar()
    if status is None:
        _refuse(backend, lease_id=lease_id, now=now)
    return HeartbeatReply(expires_at=expires, cancel=status in ("stopped", "failed"))


def heartbeats(backend: Backend, *, lease_ids: Sequence[str], now: datetime) -> dict[str, HeartbeatReply]:
    """Extend many live leases in one transaction: the replies of those extended.

    A lease left out was not live, or (PostgreSQL) its row was held by another transaction
    (a result or a report on it): one lease's wait must not hold up a whole batch of the
    fleet's heartbeats, so such a lease is for :func:`heartbeat` to extend or refuse alone.
    Workers whose record is held elsewhere keep their ``last_seen`` until their next call.
    """
    expires = now + timedelta(seconds=backend.settings.grace_period)
    with backend.db.engine.begin() as conn:
        if backend.db.is_sqlite:
            statuses = {}
            for lease in dict.fromkeys(lease_ids):
                status = _extend_stepwise(conn, {"lease": lease, "at": now, "until": expires})
                if status is not None:
                    statuses[lease] = status
        else:
            found = conn.execute(_EXTEND_MANY, {"leases": list(lease_ids), "at": now, "until": expires})
            statuses = {str(lease): str(status) for lease, status in found}
    return {
        lease: HeartbeatReply(expires_at=expires, cancel=status in ("stopped", "failed"))
        for lease, status in statuses.items()
    }


# Conditional on the lease still being live, so a concurrent reap or result wins cleanly.
_LIVE = (
    Trial.state == "running",
    Trial.lease_expires_at >= bindparam("at", type_=Trial.lease_expires_at.type),
)
_EXTENDED = {
    "lease_expires_at": bindparam("until", type_=Trial.lease_expires_at.type),
    "heartbeat_at": bindparam("at", type_=Trial.heartbeat_at.type),
}
_EXTEND = (
    update(Trial)
    .where(Trial.lease_id == bindparam("lease"), *_LIVE)
    .values(_EXTENDED)
    .returning(Trial.study_id, Trial.worker_id)
)


def _extend_in_one() -> Select[str]:
    """PostgreSQL: both updates as data-modifying CTEs and the study's status, one round trip."""
    extended = _EXTEND.cte("extended")
    seen = worker_registry.heard_from(
        select(extended.c.worker_id).scalar_subquery(), now=bindparam("at", type_=UTCDateTime())
    ).cte("seen")
    return select(Study.status).join(extended, Study.id == extended.c.study_id).add_cte(seen)


def _extend_many() -> Select[str | None, str]:
    """PostgreSQL: :func:`_extend_in_one` for a batch of leases (one SQL text for any
    number of them, so it stays prepared); rows and worker records that another
    transaction holds are skipped, never waited for."""
    leases = bindparam("leases", type_=postgresql.ARRAY(Trial.lease_id.type))
    live = (
        select(Trial.id)
        .where(Trial.lease_id == any_(leases), *_LIVE)
        .with_for_update(skip_locked=True)
        .cte("live")
    )
    extended = (
        update(Trial)
        .where(Trial.id == live.c.id)
        .values(_EXTENDED)
        .returning(Trial.lease_id, Trial.study_id, Trial.worker_id)
        .cte("extended")
    )
    seen = worker_registry.heard_from_each(
        select(extended.c.worker_id), now=bindparam("at", type_=UTCDateTime())
    ).cte("seen")
    return (
        select(extended.c.lease_id, Study.status)
        .join(extended, Study.id == extended.c.study_id)
        .add_cte(seen)
    )


_EXTEND_IN_ONE = _extend_in_one()
_EXTEND_MANY = _extend_many()


def _extend_stepwise(conn: Connection, values: dict[str, Any]) -> str | None:
    """SQLite (no data-modifying CTEs): the same three steps in one transaction."""
    extended = conn.execute(_EXTEND, values).one_or_none()
    if extended is None:
        return None
    if extended.worker_id:
        conn.execute(worker_registry.heard_from(extended.worker_id, now=values["at"]))
    return conn.scalar(select(Study.status).where(Study.id == extended.study_id))


def _refuse(backend: Backend, *, lease_id: str, now: datetime) -> NoReturn:
    """Why a heartbeat extended nothing: 404 for a lease never granted, else 409."""
    with backend.db.reading() as session:
        row = lease_row(session, lease_id)
        check_live(row, now)
    raise Conflict(f"lease {lease_id} is over")
