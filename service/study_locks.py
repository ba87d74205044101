"""How several API processes on one PostgreSQL take turns on a study: advisory locks.

A grant checks a study's budgets and opens a trial; a failure (which may re-queue its
configuration or fail the study), a reaped lease, a new round, an enqueued configuration
and a deletion change what the next grant sees. Each of them holds its study's lock for
its transaction, so they happen one at a time per study, whichever process serves them.
On SQLite there is one API process and :attr:`service.db.Database.process_lock` (with
``BEGIN IMMEDIATE``) does that job; every function here is then a no-op.

A complete or prune changes no budget. It takes the study's lock (before any write) only
when its round's budget is all granted, so it may be the round's last result; while
configurations are still to start it cannot end the round, locks only its lease's row and
never waits for the study. If the round's room ran out meanwhile, it only *tries* for the
lock after writing (:func:`service.rounds.after_result`): then it holds trial-count rows a
lock holder may need. A grant that counts running trials meanwhile sees the trial still
running (not committed yet), which errs on the safe side.

Why transaction-scoped advisory locks rather than row locks (``SELECT … FOR UPDATE`` on
the study row):

- A TPE or grid grant holds the lock while Optuna's ``study.ask()`` writes on Optuna's own
  connection. An advisory lock is a key only hone asks for, so that connection can never
  wait on it. A row lock is not so inert: ``FOR UPDATE`` on a study row conflicts with the
  ``FOR KEY SHARE`` that every insert referencing the row takes for its foreign key, so
  another connection's write would queue behind the grant, and a wait across two
  connections of one request is a deadlock PostgreSQL cannot see. (What the grant itself
  wrote, it commits before asking: see :mod:`service.grants`.)
- It is taken by key before any row is read, so a result can lock its study knowing only
  the lease, and nothing is locked that other readers or writers of the row need.
- It ends with the transaction (commit, rollback, or a dead connection's session), so a
  process killed mid-grant leaves no lock behind.

Deadlock freedom: a transaction waits for a study lock only while it holds none, except
the reaper, which takes its studies' locks in ascending id order; grants only *try* other
studies while they hold one, and a result that wrote without the lock only tries for it.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session

# The first key of hone's advisory locks ('hone' and 'honf' in ASCII); the second is a
# study's id, or 0 for the reaper.
STUDY_LOCKS = 0x686F6E65
REAPER_LOCK = 0x686F6E66


_LOCK = text("SELECT pg_advisory_xact_lock(:k, :id)")
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:k, :id)")


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def lock_study(session: Session, study_id: int) -> None:
    """Wait for the study's lock, held until this transaction ends."""
    if _postgres(session):
        session.connection().execute(_LOCK, {"k": STUDY_LOCKS, "id": int(study_id)})


def try_lock_study(session: Session, study_id: int) -> bool:
    """Take the study's lock if no other transaction holds it (True), without waiting."""
    if not _postgres(session):
        return True
    return bool(session.connection().scalar(_TRY_LOCK, {"k": STUDY_LOCKS, "id": int(study_id)}))


def lock_studies(session: Session, study_ids: Iterable[int]) -> None:
    """Wait for several studies' locks, in ascending id order (the reaper's way)."""
    for study_id in sorted(set(study_ids)):
        lock_study(session, study_id)


def try_lock_reaper(session: Session) -> bool:
    """The reaper's turn for this transaction: False while another process sweeps."""
    if not _postgres(session):
        return True
    return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:k, 0)"), {"k": REAPER_LOCK}))
