"""The reaper: fails trials whose workers went silent, and re-queues their configurations.

It runs inside the API on its own schedule (every ``reaper_interval`` seconds), so a dead
worker's trial comes back within about ``grace_period + reaper_interval`` whether or not
any other trial starts — unlike Optuna's own heartbeat reaping, which only happens when
``study.optimize`` starts the next trial.

Two kinds of stale work are reaped:

- hone trials still ``running`` whose lease expired (no heartbeat for ``grace_period``);
  the configuration is re-queued while it has retries left (``max_retries``);
- orphans: Optuna RUNNING trials of hone studies without a hone row, older than the
  grace period. A grant asks Optuna for a trial, then writes hone's row in another
  connection; a process that died in between leaves one. It was never handed out, so it
  is failed and, if it was a popped retry, its configuration is put back in the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import optuna
from fastapi import FastAPI
from optuna.trial import TrialState
from sqlalchemy import DateTime, Enum, column, select, table
from sqlalchemy.orm import Session

from hone.settings import Settings
from service import leases
from service.db import Database
from service.deps import storage_for
from service.tables import Round, Study, Trial

logger = logging.getLogger("hone.reaper")

_optuna_trials = table(
    "trials",
    column("trial_id"),
    column("study_id"),
    column("state", Enum(TrialState)),  # Optuna's column type (a PostgreSQL enum)
    column("datetime_start", DateTime()),
)


def reap_expired(
    *, db: Database, storage: optuna.storages.RDBStorage, settings: Settings, now: datetime
) -> int:
    """Fail every running trial whose lease expired before ``now``; returns how many."""
    reaped = 0
    opened: list[Round] = []
    with leases.held_transaction(db) as held:
        with leases.session_in(db, held) as session:
            query = select(Trial).where(Trial.state == "running", Trial.lease_expires_at < now)
            if held is not None:
                query = query.with_for_update(skip_locked=True)
            expired = list(session.scalars(query.order_by(Trial.id).limit(1000)))
        for row in expired:
            requeued = leases.expire_lease(
                db=db, storage=storage, settings=settings, row=row, held=held, now=now, opened=opened
            )
            logger.warning(
                "lease expired: study %s trial %s (worker %s), %s",
                row.study_id,
                row.number,
                row.worker_id,
                "re-queued" if requeued else "out of retries",
            )
            reaped += 1
        reaped += _reap_orphans(db, held, storage=storage, settings=settings, now=now)
    leases.publish_rounds(storage, opened)
    return reaped


def _orphans(session: Session, *, before: datetime) -> list[tuple[int, int]]:
    hone_row = select(Trial.id).where(Trial.trial_id == _optuna_trials.c.trial_id).exists()
    query = (
        select(_optuna_trials.c.trial_id, _optuna_trials.c.study_id, _optuna_trials.c.datetime_start)
        .join(Study, Study.id == _optuna_trials.c.study_id)
        .where(_optuna_trials.c.state == TrialState.RUNNING, ~hone_row)
        .limit(1000)
    )
    # Optuna stores naive local times.
    local_before = before.astimezone().replace(tzinfo=None)
    return [
        (int(trial_id), int(study_id))
        for trial_id, study_id, started in session.execute(query)
        if started is None or started < local_before
    ]


def _reap_orphans(
    db: Database,
    held: Session | None,
    *,
    storage: optuna.storages.RDBStorage,
    settings: Settings,
    now: datetime,
) -> int:
    with leases.session_in(db, held) as session:
        orphans = _orphans(session, before=now - timedelta(seconds=settings.grace_period))
    for trial_id, study_id in orphans:
        trial = storage.get_trial(trial_id)
        storage.set_trial_system_attr(trial_id, "fail_reason", "orphan: the API stopped while granting it")
        leases.set_optuna_state(storage, trial_id, TrialState.FAIL, None)
        attrs = trial.user_attrs
        if "hone_config_number" in attrs:  # a popped retry: its configuration must still run
            params = dict(trial.system_attrs.get("fixed_params") or trial.params)
            name = storage.get_study_name_from_id(study_id)
            optuna.Study(study_name=name, storage=storage).enqueue_trial(params, user_attrs=attrs)
        logger.warning("failed orphan optuna trial %s of study %s", trial.number, study_id)
    return len(orphans)


@asynccontextmanager
async def run_reaper(app: FastAPI) -> AsyncIterator[None]:
    """Runs :func:`reap_expired` every ``reaper_interval`` seconds while the app lives."""
    settings: Settings = app.state.settings

    async def loop() -> None:
        while True:
            try:
                # storage_for, in the thread: the storage is made on first use when the
                # database was not reachable at start-up.
                count = await asyncio.to_thread(
                    lambda: reap_expired(
                        db=app.state.db, storage=storage_for(app), settings=settings, now=datetime.now(UTC)
                    )
                )
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
