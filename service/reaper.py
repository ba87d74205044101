"""The reaper: fails trials whose workers went silent, and re-queues their configurations.

It runs inside the API on its own schedule (every ``reaper_interval`` seconds), so a dead
worker's trial comes back within about ``grace_period + reaper_interval`` whether or not
any other trial starts — unlike Optuna's own heartbeat reaping, which only happens when
``study.optimize`` starts the next trial.

Two kinds of stale work are reaped:

- hone trials still ``running`` whose lease expired (no heartbeat for ``grace_period``);
  the configuration is re-queued while it has retries left (``max_retries``);
- orphans: Optuna RUNNING trials of hone studies without a hone row, older than the
  grace period. A grant from a sampler that reads the study's history (TPE, grid) asks
  Optuna for a trial, which commits on Optuna's connection, then writes hone's row; a
  process that died in between leaves one. It was never handed out, so it is failed and,
  if it was a popped retry, its configuration is put back in the queue.

One sweep is one transaction. With several API processes on PostgreSQL each runs a reaper,
and one sweeps at a time (an advisory lock, :func:`service.study_locks.try_lock_reaper`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from sqlalchemy import select

from hone.settings import Settings
from service import optuna_tables, outcomes, study_locks
from service.backend import Backend
from service.deps import backend_for
from service.tables import Trial

logger = logging.getLogger("hone.reaper")


def reap_expired(backend: Backend, *, now: datetime) -> int:
    """Fail every running trial whose lease expired before ``now``, and every orphan;
    returns how many."""
    db = backend.db
    grace = timedelta(seconds=backend.settings.grace_period)
    with db.process_lock, db.transaction() as session:
        if not study_locks.try_lock_reaper(session):
            return 0  # another API process is sweeping
        stale = select(Trial.id, Trial.study_id).where(Trial.state == "running", Trial.lease_expires_at < now)
        found = session.execute(stale.order_by(Trial.id).limit(1000)).all()
        orphaned = optuna_tables.orphans(session, before=now - grace)
        # The studies' locks before any row: a result or grant in progress on one of them
        # finishes first, and what is read next is what it left.
        study_locks.lock_studies(session, [study for _, study in found] + [study for _, study in orphaned])
        query = select(Trial).where(
            Trial.id.in_([trial for trial, _ in found]),
            Trial.state == "running",
            Trial.lease_expires_at < now,
        )
        if not db.is_sqlite:
            # A heartbeat extending one of these leases right now wins: its row is skipped.
            query = query.with_for_update(skip_locked=True)
        expired = list(session.scalars(query.order_by(Trial.id).execution_options(populate_existing=True)))
        for row in expired:
            requeued = outcomes.expire_lease(session, backend.settings, row, now=now)
            logger.warning(
                "lease expired: study %s trial %s (worker %s), %s",
                row.study_id,
                row.number,
                row.worker_id,
                "re-queued" if requeued else "out of retries",
            )
        # Listed again under the locks: a grant that was writing its hone row has written it.
        listed = {trial for trial, _ in orphaned}
        orphans = [
            trial for trial, _ in optuna_tables.orphans(session, before=now - grace) if trial in listed
        ]
        for trial_id in orphans:
            optuna_tables.fail_orphan(
                session, trial_id=trial_id, reason="orphan: the API stopped while granting it"
            )
            logger.warning("failed orphan optuna trial %s", trial_id)
    return len(expired) + len(orphans)


@asynccontextmanager
async def run_reaper(app: FastAPI) -> AsyncIterator[None]:
    """Runs :func:`reap_expired` every ``reaper_interval`` seconds while the app lives."""
    settings: Settings = app.state.settings

    async def loop() -> None:
        while True:
            try:
                # backend_for, in the thread: Optuna's storage is made on first use when the
                # database was not reachable at start-up.
                count = await asyncio.to_thread(lambda: reap_expired(backend_for(app), now=datetime.now(UTC)))
                if count:
                    logger.info("reaped %d trials", count)
            except Exception:  # a database hiccup must not end the reaper
                logger.exception("reaper sweep failed")
            await asyncio.sleep(settings.reaper_interval)

    task = asyncio.create_task(loop(), name="hone-reaper")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
