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

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service import study_locks, worker_registry
from service.backend import Backend
from service.errors import Conflict, NotFound
from service.tables import Study, Trial


@dataclass(frozen=True)
class HeartbeatReply:
    expires_at: datetime
    cancel: bool


def lease_row(session: Session, lease_id: str, *, lock: bool = False) -> Trial:
    """The trial a lease is on (404 when no such lease was ever granted)."""
    query = select(Trial).where(Trial.lease_id == lease_id)
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).one_or_none()
    if row is None:
        raise NotFound(f"no lease {lease_id}")
    return row


def locked_lease_row(session: Session, lease_id: str) -> Trial:
    """The lease's trial, locked for this transaction, after its study's lock (see
    :mod:`service.study_locks`: the study first, so a result queues behind a grant)."""
    study_id = session.scalar(select(Trial.study_id).where(Trial.lease_id == lease_id))
    if study_id is None:
        raise NotFound(f"no lease {lease_id}")
    study_locks.lock_study(session, study_id)
    return lease_row(session, lease_id, lock=True)


def check_live(row: Trial, now: datetime) -> None:
    """409 unless the lease's trial is running and the lease has not expired."""
    if row.state != "running":
        raise Conflict(f"lease {row.lease_id} is over: trial {row.number} is {row.state}")
    if row.lease_expires_at is None or row.lease_expires_at < now:
        raise Conflict(f"lease {row.lease_id} expired at {row.lease_expires_at}; the trial will be re-queued")


def heartbeat(backend: Backend, *, lease_id: str, now: datetime) -> HeartbeatReply:
    """Extend a live lease by ``grace_period``; ``cancel`` tells the worker the study was
    stopped or failed."""
    expires = now + timedelta(seconds=backend.settings.grace_period)
    with backend.db.transaction() as session:
        row = lease_row(session, lease_id)
        check_live(row, now)
        # Conditional on the lease still being live, so a concurrent reap wins cleanly.
        result = session.execute(
            update(Trial)
            .where(Trial.id == row.id, Trial.state == "running", Trial.lease_expires_at >= now)
            .values(lease_expires_at=expires, heartbeat_at=now)
        )
        if getattr(result, "rowcount", 1) != 1:
            raise Conflict(f"lease {lease_id} is over")
        status = session.scalar(select(Study.status).where(Study.id == row.study_id))
        worker_registry.heard_from(session, worker=row.worker_id, now=now)
    return HeartbeatReply(expires_at=expires, cancel=status in ("stopped", "failed"))
