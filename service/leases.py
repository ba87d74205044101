"""The lease protocol: granting trials to workers, and taking their reports and results.

A **lease** is a worker's claim on one Optuna trial of a running study, valid until
``lease_expires_at``. Workers extend it by heartbeating (every ``heartbeat_interval``
seconds); a lease not extended for ``grace_period`` seconds is failed by the reaper
(:mod:`service.reaper`) and its configuration re-queued. Every call after that on the
lease is refused with 409, so a late result never overwrites anything.

Grants are atomic. Inside one process every grant, finish and reap holds
``Database.grant_lock``; on PostgreSQL the chosen study row is also locked
``FOR UPDATE SKIP LOCKED`` for the whole grant, so several API replicas never exceed a
round's budget or ``max_concurrent`` and skip a study another replica is granting on.
On SQLite the API is the only writer; its short transactions never stay open across an
Optuna call (Optuna writes through its own connection, which would wait on the lock).

Order of work for a grant: pending Optuna WAITING trials first (retries and enqueued
configurations, which ``study.ask()`` pops), then new configurations sampled in the
current round's box while the round's budget lasts. Studies share workers fairly: the
study granted longest ago goes first.

Retries: a configuration failed with ``retry`` (a reaped lease, a worker giving its
trial back, CUDA out of memory) becomes a new Optuna trial with the same
``config_number`` and ``attempt + 1``. The round budget counts first attempts only.
Failures count against ``max_retries``; a trial given back by a worker that is shutting
down (reason :data:`SHUTDOWN_REASON`) does not, since nothing went wrong with it.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.trial import TrialState
from sqlalchemy import Enum, Select, column, func, select, table, update
from sqlalchemy.orm import Session

from hone.settings import Settings
from service import optuna_rows, rounds
from service.caches import CACHE_STUDIES, Recent, StudyKey, study_key, study_spec
from service.db import Database
from service.errors import Conflict, NotFound
from service.pruner_storage import PrunerStorage
from service.results import configurations_started
from service.sampling import BoxSampler, create_pruner, create_sampler, suggest_params
from service.spec import PrunerSpec, StudySpec
from service.tables import Round, Study, Trial, Worker

logger = logging.getLogger("hone.leases")

SHUTDOWN_REASON = "worker shutting down"
Outcome = Literal["complete", "fail", "prune"]
_STATE_OF: dict[Outcome, str] = {"complete": "complete", "fail": "failed", "prune": "pruned"}
_OPTUNA_STATE: dict[Outcome, TrialState] = {
    "complete": TrialState.COMPLETE,
    "fail": TrialState.FAIL,
    "prune": TrialState.PRUNED,
}


# Optuna wraps a bare RDBStorage in a fresh _CachedStorage per Study object, so a pruner
# reading the study's finished trials reloaded them all on every report (O(trials) per
# step). One cache per study and process reads only what is new, as `study.optimize` does;
# finished trials never change, so a cache is safe across processes.
_cached_storages: Recent[StudyKey, _CachedStorage] = Recent(CACHE_STUDIES)


def study_storage(storage: optuna.storages.RDBStorage, study: Study) -> BaseStorage:
    """A per-process caching view of ``storage`` for one study."""
    return _cached_storages.get(
        study_key(storage, study),
        lambda: _CachedStorage(storage),
        still_valid=lambda cached: cached._backend is storage,
    )


@dataclass(frozen=True)
class Grant:
    """A trial handed to a worker: what to run, and the lease to report under."""

    lease_id: str
    expires_at: datetime
    heartbeat_interval: float
    study_id: int
    study_name: str
    number: int
    params: dict[str, Any]
    round: int
    objective: dict[str, Any]


@dataclass(frozen=True)
class HeartbeatReply:
    expires_at: datetime
    cancel: bool


@dataclass(frozen=True)
class Finished:
    """The state a lease's trial ended in (``duplicate``: the same result was sent again)."""

    study_id: int
    number: int
    state: str
    duplicate: bool


@dataclass(frozen=True)
class _Candidate:
    study: Study
    spec: StudySpec
    box: dict[str, Any]
    round: int
    index: int
    waiting: int


@contextmanager
def held_transaction(db: Database) -> Iterator[Session | None]:
    """PostgreSQL: one transaction whose row locks last across the Optuna calls.
    SQLite: ``None`` — callers use short transactions, serialised by the grant lock."""
    with db.grant_lock:
        if db.is_sqlite:
            yield None
        else:
            with db.transaction() as session:
                yield session


@contextmanager
def session_in(db: Database, held: Session | None) -> Iterator[Session]:
    if held is not None:
        yield held
    else:
        with db.transaction() as session:
            yield session


# Optuna's own table, read through hone's session: an Optuna call here would open a second
# connection, which on SQLite would wait for the write lock this transaction holds.
_optuna_trials = table("trials", column("trial_id"), column("study_id"), column("state", Enum(TrialState)))
_optuna_user_attrs = table("trial_user_attributes", column("trial_id"), column("key"), column("value_json"))


def _waiting_query(study_id: int) -> Select[Any]:
    query = select(func.count()).select_from(_optuna_trials)
    return query.where(_optuna_trials.c.study_id == study_id, _optuna_trials.c.state == TrialState.WAITING)


def _waiting_trials(session: Session, study_id: int) -> int:
    """Optuna WAITING trials of the study: retries and enqueued configurations."""
    return int(session.scalar(_waiting_query(study_id)) or 0)


def _round_state(session: Session, study_id: int, round: int) -> tuple[Round, int, int] | None:
    """A round, its configurations started and the study's WAITING trials: one query (this
    runs on every grant)."""
    query = select(
        Round,
        configurations_started(study_id, round).scalar_subquery(),
        _waiting_query(study_id).scalar_subquery(),
    ).where(Round.study_id == study_id, Round.number == round)
    found = session.execute(query).first()
    if found is None:
        return None
    return found[0], int(found[1] or 0), int(found[2] or 0)


def enqueued_configurations(session: Session, study_id: int) -> int:
    """WAITING trials that are new configurations (user-enqueued), not retries of one."""
    is_retry = (
        select(_optuna_user_attrs.c.trial_id)
        .where(
            _optuna_user_attrs.c.trial_id == _optuna_trials.c.trial_id,
            _optuna_user_attrs.c.key == "hone_config_number",
        )
        .exists()
    )
    query = select(func.count()).select_from(_optuna_trials)
    query = query.where(
        _optuna_trials.c.study_id == study_id, _optuna_trials.c.state == TrialState.WAITING, ~is_retry
    )
    return int(session.scalar(query) or 0)


def started_configurations(session: Session, *, study_id: int, round: int) -> int:
    """Configurations of a round that have had a first attempt (retries are not new ones)."""
    return int(session.scalar(configurations_started(study_id, round)) or 0)


def _running(session: Session, study_id: int) -> int:
    return int(
        session.scalar(select(func.count()).where(Trial.study_id == study_id, Trial.state == "running")) or 0
    )


def _advance(session: Session, *, study: Study, now: datetime, opened: list[Round]) -> None:
    """Open the next round (or complete the study) when the current round has finished.

    Rounds it opens are added to ``opened``, to publish to the dashboard after the commit.
    """
    before = study.current_round
    changed = rounds.advance(
        session, study=study, pending_retries=_waiting_trials(session, study.id), now=now
    )
    if changed and study.current_round != before:
        opened.append(rounds.current_round(session, study=study))


def _after_result(session: Session, row: Trial, *, now: datetime, opened: list[Round]) -> None:
    """Advance the study if the result of ``row`` may have finished its round.

    While configurations of the trial's round have still to start, that round cannot be
    over (and it is the current one): one indexed count settles the common case."""
    query = select(Round.budget, configurations_started(row.study_id, row.round).scalar_subquery())
    found = session.execute(query.where(Round.study_id == row.study_id, Round.number == row.round)).first()
    if found is not None and int(found[1] or 0) < found[0]:
        return
    study = session.get(Study, row.study_id)
    assert study is not None
    _advance(session, study=study, now=now, opened=opened)


def publish_rounds(storage: optuna.storages.RDBStorage, opened: list[Round]) -> None:
    for round_ in opened:
        try:
            rounds.publish_round(storage, round=round_)
        except Exception:  # the dashboard's copy is a convenience; never fail a lease for it
            logger.exception("could not publish round %s of study %s", round_.number, round_.study_id)


def _candidate(session: Session, *, study: Study, now: datetime, opened: list[Round]) -> _Candidate | None:
    """The study's next grant, if it has room for one: a WAITING trial or a new configuration."""
    if study.status != "running":
        return None
    state = _round_state(session, study.id, study.current_round)
    if state is not None and state[2] == 0 and state[1] >= state[0].budget:
        # The round's budget is out: it may have finished, opening the next round or
        # completing the study (the only case in which advancing can change anything).
        _advance(session, study=study, now=now, opened=opened)
        if study.status != "running":
            return None
        state = _round_state(session, study.id, study.current_round)
    if state is None:
        return None
    current, started, waiting = state
    if started >= current.budget and waiting == 0:
        return None
    if study.max_concurrent is not None and _running(session, study.id) >= study.max_concurrent:
        return None
    return _Candidate(
        study=study,
        spec=study_spec(study),
        box=dict(current.box),
        round=current.number,
        index=started,
        waiting=waiting,
    )


def _studies_in_turn(session: Session, *, studies: list[int] | None) -> list[int]:
    """Running studies, the one served longest ago (or never) first."""
    query = select(Study.id).where(Study.status == "running")
    if studies:
        query = query.where(Study.id.in_(studies))
    query = query.order_by(Study.last_granted_at.asc().nulls_first(), Study.id)
    return list(session.scalars(query))


def _lock_study(session: Session, study_id: int) -> Study | None:
    """Lock one study row for this grant; None when another replica is granting on it."""
    query = (
        select(Study)
        .where(Study.id == study_id, Study.status == "running")
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return session.scalars(query).one_or_none()


def objective_for_worker(spec: StudySpec) -> dict[str, Any]:
    """The part of the spec a worker needs to run a trial (the spec's ``objective``)."""
    return spec.objective.model_dump(mode="json")


def grant_lease(
    *,
    db: Database,
    storage: optuna.storages.RDBStorage,
    settings: Settings,
    worker: str,
    devices: list[str],
    studies: list[int] | None,
    host: str | None = None,
    now: datetime,
) -> Grant | None:
    """Lease the next trial to ``worker``, or None when no running study has work and room."""
    opened: list[Round] = []
    grant: Grant | None = None
    candidate: _Candidate | None = None
    seen: dict[str, Any] = {"worker": worker, "host": host, "devices": devices, "now": now}
    with held_transaction(db) as held:
        with session_in(db, held) as session:
            for study_id in _studies_in_turn(session, studies=studies):
                study = _lock_study(session, study_id) if held is not None else session.get(Study, study_id)
                if study is None:
                    continue
                candidate = _candidate(session, study=study, now=now, opened=opened)
                if candidate is not None:
                    break
            if candidate is not None and candidate.waiting == 0 and candidate.spec.sampler.type in _DRAWN:
                # The common case, in this same transaction: one commit per grant.
                grant = _draw(session, settings=settings, candidate=candidate, seen=seen)
            elif candidate is None:
                _seen(session, **seen, trial=None)
        if grant is None and candidate is not None:
            grant = _ask(
                db, held, storage=storage, settings=settings, candidate=candidate, worker=worker, now=now
            )
            with session_in(db, held) as session:
                _seen(session, **seen, trial=grant)
    publish_rounds(storage, opened)
    return grant


# Samplers whose draw depends only on (seed, trial number or index, box): no study history.
_DRAWN = ("random", "sobol")


def _draw(session: Session, *, settings: Settings, candidate: _Candidate, seen: dict[str, Any]) -> Grant:
    """A new configuration from a box sampler, written in the caller's transaction.

    The same trial ``study.ask()`` + ``suggest_params`` would make (same number, params,
    distributions and ``hone_round`` attribute), without one commit per Optuna call."""
    spec, study_row, now = candidate.spec, candidate.study, seen["now"]
    sampler = create_sampler(spec, box=candidate.box, index=candidate.index)
    assert isinstance(sampler, BoxSampler)
    trial_id, number = optuna_rows.create_trial(session, study_id=study_row.id)
    lease_id = uuid.uuid4().hex
    expires = now + timedelta(seconds=settings.grace_period)
    drawn = optuna.trial.FixedTrial({name: sampler.value(number, name) for name in spec.space}, number)
    params = suggest_params(drawn, spec)
    optuna_rows.add_params(session, trial_id=trial_id, params=params, distributions=drawn.distributions)
    optuna_rows.add_user_attrs(session, trial_id=trial_id, attrs={"hone_round": candidate.round})
    session.add(
        Trial(
            study_id=study_row.id,
            trial_id=trial_id,
            number=number,
            round=candidate.round,
            config_number=number,
            attempt=0,
            state="running",
            params=params,
            lease_id=lease_id,
            lease_expires_at=expires,
            heartbeat_at=now,
            worker_id=seen["worker"],
            started_at=now,
            updated_at=now,
        )
    )
    session.execute(update(Study).where(Study.id == study_row.id).values(last_granted_at=now))
    grant = Grant(
        lease_id=lease_id,
        expires_at=expires,
        heartbeat_interval=settings.heartbeat_interval,
        study_id=study_row.id,
        study_name=study_row.name,
        number=number,
        params=params,
        round=candidate.round,
        objective=objective_for_worker(spec),
    )
    _seen(session, **seen, trial=grant)
    return grant


def _ask(
    db: Database,
    held: Session | None,
    *,
    storage: optuna.storages.RDBStorage,
    settings: Settings,
    candidate: _Candidate,
    worker: str,
    now: datetime,
) -> Grant:
    spec, study_row = candidate.spec, candidate.study
    study = optuna.load_study(
        study_name=study_row.name,
        storage=study_storage(storage, study_row),
        sampler=create_sampler(spec, box=candidate.box, index=candidate.index),
        pruner=create_pruner(spec),
    )
    trial = study.ask()
    try:
        params = suggest_params(trial, spec)
        attrs = trial.user_attrs
        config_number = attrs.get("hone_config_number")
        if config_number is None:  # a new configuration (sampled, or enqueued by a user)
            config_number, attempt, round_number = trial.number, 0, candidate.round
            trial.set_user_attr("hone_round", round_number)  # for the dashboard
        else:
            attempt = int(attrs.get("hone_attempt", 1))
            round_number = int(attrs.get("hone_round", candidate.round))
    except Exception:
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        raise
    lease_id = uuid.uuid4().hex
    expires = now + timedelta(seconds=settings.grace_period)
    with session_in(db, held) as session:
        session.add(
            Trial(
                study_id=study_row.id,
                trial_id=trial._trial_id,
                number=trial.number,
                round=round_number,
                config_number=int(config_number),
                attempt=attempt,
                state="running",
                params=params,
                lease_id=lease_id,
                lease_expires_at=expires,
                heartbeat_at=now,
                worker_id=worker,
                started_at=now,
                updated_at=now,
            )
        )
        session.execute(update(Study).where(Study.id == study_row.id).values(last_granted_at=now))
    return Grant(
        lease_id=lease_id,
        expires_at=expires,
        heartbeat_interval=settings.heartbeat_interval,
        study_id=study_row.id,
        study_name=study_row.name,
        number=trial.number,
        params=params,
        round=round_number,
        objective=objective_for_worker(spec),
    )


def _seen(
    session: Session,
    *,
    worker: str,
    host: str | None,
    devices: list[str] | None,
    now: datetime,
    trial: Grant | None,
) -> None:
    changes: dict[str, Any] = {
        "last_seen": now,
        "current_study_id": trial.study_id if trial else None,
        "current_trial_number": trial.number if trial else None,
    }
    if host:
        changes["host"] = host
    if devices is not None:
        changes["devices"] = list(devices)
    result = session.execute(update(Worker).where(Worker.id == worker).values(**changes))
    if getattr(result, "rowcount", 1) == 0:
        session.add(Worker(**{"id": worker, "host": host, "devices": [], "first_seen": now, **changes}))


def _lease_row(session: Session, lease_id: str, *, lock: bool = False) -> Trial:
    query = select(Trial).where(Trial.lease_id == lease_id)
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).one_or_none()
    if row is None:
        raise NotFound(f"no lease {lease_id}")
    return row


def _check_live(row: Trial, now: datetime) -> None:
    if row.state != "running":
        raise Conflict(f"lease {row.lease_id} is over: trial {row.number} is {row.state}")
    if row.lease_expires_at is None or row.lease_expires_at < now:
        raise Conflict(f"lease {row.lease_id} expired at {row.lease_expires_at}; the trial will be re-queued")


def heartbeat(*, db: Database, settings: Settings, lease_id: str, now: datetime) -> HeartbeatReply:
    """Extend a live lease by ``grace_period``; ``cancel`` tells the worker the study was stopped."""
    expires = now + timedelta(seconds=settings.grace_period)
    with db.transaction() as session:
        row = _lease_row(session, lease_id)
        _check_live(row, now)
        # Conditional on the lease still being live, so a concurrent reap wins cleanly.
        result = session.execute(
            update(Trial)
            .where(Trial.id == row.id, Trial.state == "running", Trial.lease_expires_at >= now)
            .values(lease_expires_at=expires, heartbeat_at=now)
        )
        if getattr(result, "rowcount", 1) != 1:
            raise Conflict(f"lease {lease_id} is over")
        status = session.scalar(select(Study.status).where(Study.id == row.study_id))
        if row.worker_id:
            session.execute(update(Worker).where(Worker.id == row.worker_id).values(last_seen=now))
    return HeartbeatReply(expires_at=expires, cancel=status == "stopped")


def report(
    *,
    db: Database,
    storage: optuna.storages.RDBStorage,
    settings: Settings,
    lease_id: str,
    step: int,
    value: float,
    now: datetime,
    earlier: Mapping[int, float] | None = None,
) -> bool:
    """Record a step's value; True when the study's pruner says the trial should stop.

    ``earlier`` are steps the worker held back and sends along (it coalesces steps that
    come faster than a round trip is worth); they are recorded too, and the pruner
    decides on ``step``. One transaction: the lease is checked, the values written to
    Optuna's table and the trial's row updated. The pruner runs after it (reads only),
    and not at all where it cannot prune yet (warm-up steps, too few completed trials)."""
    with db.transaction() as session:
        row = _lease_row(session, lease_id, lock=not db.is_sqlite)
        _check_live(row, now)
        if optuna_rows.trial_state(session, row.trial_id) != TrialState.RUNNING:
            raise Conflict(f"lease {lease_id} is over: Optuna's trial {row.number} is finished")
        values = {**(earlier or {}), step: value}
        optuna_rows.set_intermediate_values(session, trial_id=row.trial_id, values=values)
        session.execute(
            update(Trial)
            .where(Trial.id == row.id, Trial.state == "running")
            .values(last_step=step, heartbeat_at=now, updated_at=now)
        )
        study_row = session.get(Study, row.study_id)
        assert study_row is not None
        spec = study_spec(study_row)
        if spec.pruner.type == "none":
            return False
        finished = _pruner_storage(storage, study_row)
        finished.probe(session, row.study_id)
        if not _may_prune(spec.pruner, completed=finished.completed(row.study_id), step=step):
            return False
        # The median and percentile pruners read only the trial's own intermediate values.
        light = spec.pruner.type in ("median", "percentile")
        trial = (
            optuna_rows.reported_trial(session, trial_id=row.trial_id, number=row.number) if light else None
        )
    finished.load(row.study_id)
    study = _pruning_study(finished, study_row, spec)
    try:
        prune = study.pruner.prune(study, trial or storage.get_trial(row.trial_id))
    except (UpdateFinishedTrialError, RuntimeError) as error:
        raise Conflict(f"lease {lease_id} is over: {error}") from error
    if prune:
        reason = f"pruned by {spec.pruner.type} pruner at step {step}: value {value:.4g}"
        with db.transaction() as session:
            session.execute(
                update(Trial).where(Trial.id == row.id, Trial.state == "running").values(reason=reason)
            )
    return bool(prune)


def _may_prune(pruner: PrunerSpec, *, completed: int, step: int) -> bool:
    """False where the study's pruner provably answers no (saving its reads of the study)."""
    if pruner.type in ("median", "percentile"):
        # Optuna's percentile pruner needs n_startup_trials completed trials, and at least one.
        return step >= pruner.n_warmup_steps and completed >= max(pruner.n_startup_trials, 1)
    return True


_pruner_storages: Recent[StudyKey, PrunerStorage] = Recent(CACHE_STUDIES)
_pruning_studies: Recent[StudyKey, optuna.Study] = Recent(CACHE_STUDIES)


def _pruner_storage(storage: optuna.storages.RDBStorage, study_row: Study) -> PrunerStorage:
    """The study's finished trials as its pruner sees them, kept per process."""
    return _pruner_storages.get(
        study_key(storage, study_row),
        lambda: PrunerStorage(storage),
        still_valid=lambda found: found._backend is storage,
    )


def _pruning_study(finished: PrunerStorage, study_row: Study, spec: StudySpec) -> optuna.Study:
    """An Optuna Study with the spec's pruner over ``finished``, made once per process
    (making one reads the database; pruners keep no state that another report could spoil)."""
    return _pruning_studies.get(
        study_key(finished, study_row),
        lambda: optuna.Study(
            study_name=study_row.name,
            storage=finished,
            sampler=optuna.samplers.RandomSampler(),  # cheap before_trial; nothing is sampled here
            pruner=create_pruner(spec),
        ),
    )


def finish(
    *,
    db: Database,
    storage: optuna.storages.RDBStorage,
    settings: Settings,
    lease_id: str,
    outcome: Outcome,
    value: float | None = None,
    metrics: dict[str, float] | None = None,
    reason: str | None = None,
    retry: bool = False,
    cause: str = "error",
    steps: Mapping[int, float] | None = None,
    now: datetime,
) -> Finished:
    """End a lease's trial as complete, failed (optionally re-queued) or pruned.

    ``steps`` are step values the worker had not sent yet; they are recorded first.
    Idempotent: the same result sent again for a finished lease answers as before. Any
    other call on a finished, expired or superseded lease raises :class:`Conflict`.
    """
    if cause == "shutdown":
        reason = SHUTDOWN_REASON
    opened: list[Round] = []
    if steps and outcome == "fail" and not db.is_sqlite:
        # Optuna fails the trial on a connection of its own, which would wait for the locks
        # these rows take inside the held transaction: they commit first.
        _record_steps(db, lease_id=lease_id, steps=steps, now=now)
        steps = None
    with held_transaction(db) as held:
        with session_in(db, held) as session:
            row = _lease_row(session, lease_id, lock=held is not None)
            if row.state != "running":
                if _same_result(row, outcome, value=value, reason=reason):
                    return Finished(row.study_id, row.number, row.state, duplicate=True)
                raise Conflict(f"lease {lease_id} is over: trial {row.number} is {row.state}")
            _check_live(row, now)
            if steps:
                _write_steps(session, row, steps)
        if outcome == "fail":
            _fail(
                db,
                held,
                storage=storage,
                settings=settings,
                row=row,
                reason=reason or "failed",
                retry=retry,
                now=now,
                opened=opened,
            )
        else:
            _end(
                db,
                held,
                row=row,
                outcome=outcome,
                value=value,
                metrics=metrics,
                now=now,
                opened=opened,
            )
    publish_rounds(storage, opened)
    return Finished(row.study_id, row.number, _STATE_OF[outcome], duplicate=False)


def _write_steps(session: Session, row: Trial, steps: Mapping[int, float]) -> None:
    optuna_rows.set_intermediate_values(session, trial_id=row.trial_id, values=dict(steps))
    last = max([*steps, row.last_step or 0])
    session.execute(update(Trial).where(Trial.id == row.id).values(last_step=last))


def _record_steps(db: Database, *, lease_id: str, steps: Mapping[int, float], now: datetime) -> None:
    """A live lease's steps in a transaction of their own (a dead lease's are dropped; the
    result that carries them is refused or answered as a duplicate)."""
    with db.transaction() as session:
        row = _lease_row(session, lease_id, lock=not db.is_sqlite)
        if row.state == "running" and row.lease_expires_at is not None and row.lease_expires_at >= now:
            _write_steps(session, row, steps)


def _end(
    db: Database,
    held: Session | None,
    *,
    row: Trial,
    outcome: Outcome,
    value: float | None,
    metrics: dict[str, float] | None,
    now: datetime,
    opened: list[Round],
) -> None:
    """Complete or prune: Optuna's rows and hone's in one transaction."""
    with session_in(db, held) as session:
        values = [value] if outcome == "complete" and value is not None else None
        if outcome == "prune":
            last = optuna_rows.last_intermediate(session, row.trial_id)
            values = [last] if last is not None and math.isfinite(last) else None
        if outcome == "complete" and metrics:
            finite = {k: float(v) for k, v in list(metrics.items())[:64] if math.isfinite(v)}
            # One attribute, which the dashboard shows; before the state, as Optuna would.
            optuna_rows.set_user_attr(session, trial_id=row.trial_id, key="metrics", value=finite)
        if not optuna_rows.finish_trial(
            session, trial_id=row.trial_id, state=_OPTUNA_STATE[outcome], values=values
        ):
            logger.info("optuna trial %s was already finished", row.trial_id)
        changes: dict[str, Any] = {"state": _STATE_OF[outcome], "finished_at": now, "updated_at": now}
        if values:
            changes["value"] = values[0]
        if outcome == "prune" and not row.reason:
            changes["reason"] = "pruned by the worker"
        session.execute(update(Trial).where(Trial.id == row.id).values(**changes))
        _release_worker(session, row)
        _after_result(session, row, now=now, opened=opened)


def _same_result(row: Trial, outcome: Outcome, *, value: float | None, reason: str | None) -> bool:
    if row.state != _STATE_OF[outcome]:
        return False
    if outcome == "complete":
        return value is not None and row.value is not None and math.isclose(row.value, value, rel_tol=1e-12)
    if outcome == "fail":
        return (row.reason or "") == (reason or "failed")
    return True


def set_optuna_state(
    storage: optuna.storages.RDBStorage, trial_id: int, state: TrialState, values: list[float] | None
) -> None:
    try:
        storage.set_trial_state_values(trial_id, state, values)
    except UpdateFinishedTrialError:
        # A previous attempt of this very call got through before its answer was lost.
        logger.info("optuna trial %s was already finished", trial_id)


def _release_worker(session: Session, row: Trial) -> None:
    if row.worker_id:
        session.execute(
            update(Worker)
            .where(
                Worker.id == row.worker_id,
                Worker.current_study_id == row.study_id,
                Worker.current_trial_number == row.number,
            )
            .values(current_study_id=None, current_trial_number=None)
        )


def _counted_failures(session: Session, row: Trial) -> int:
    """Failed attempts of the row's configuration that count against ``max_retries``,
    ``row`` included (counted as failing now, whatever its state)."""
    others = int(
        session.scalar(
            select(func.count()).where(
                Trial.study_id == row.study_id,
                Trial.config_number == row.config_number,
                Trial.id != row.id,
                Trial.state == "failed",
                func.coalesce(Trial.reason, "") != SHUTDOWN_REASON,
            )
        )
        or 0
    )
    return others + 1


def _requeued_already(session: Session, row: Trial) -> bool:
    """Whether ``row``'s configuration is queued or running again already.

    Optuna commits an enqueue on its own connection at once; if the API dies before
    hone's transaction commits, the row is still ``running`` and the reaper fails it a
    second time. Without this check that second pass would queue the configuration
    twice, and it would run and count twice."""
    later = select(Trial.id).where(
        Trial.study_id == row.study_id, Trial.config_number == row.config_number, Trial.attempt > row.attempt
    )
    if session.scalar(later.limit(1)) is not None:
        return True
    joined = _optuna_trials.join(
        _optuna_user_attrs, _optuna_user_attrs.c.trial_id == _optuna_trials.c.trial_id
    )
    waiting = (
        select(func.count())
        .select_from(joined)
        .where(
            _optuna_trials.c.study_id == row.study_id,
            _optuna_trials.c.state == TrialState.WAITING,
            _optuna_user_attrs.c.key == "hone_config_number",
            _optuna_user_attrs.c.value_json == json.dumps(row.config_number),
        )
    )
    return bool(session.scalar(waiting))


def _fail(
    db: Database,
    held: Session | None,
    *,
    storage: optuna.storages.RDBStorage,
    settings: Settings,
    row: Trial,
    reason: str,
    retry: bool,
    now: datetime,
    opened: list[Round],
) -> bool:
    """Fail ``row``'s trial and re-queue its configuration when allowed; True if re-queued.

    The retry is queued (Optuna commits it at once) before hone's row is marked failed: an
    API that dies in between leaves the row ``running``, so the reaper fails it again and
    :func:`_requeued_already` keeps the configuration from being queued twice. The other
    order lost the retry on SQLite, where the two are separate commits: a ``failed`` row is
    never looked at again."""
    set_optuna_state(storage, row.trial_id, TrialState.FAIL, None)
    with session_in(db, held) as session:
        requeue = (
            retry
            and (reason == SHUTDOWN_REASON or _counted_failures(session, row) <= settings.max_retries)
            and not _requeued_already(session, row)
        )
        study = session.get(Study, row.study_id)
        assert study is not None
        name = study.name
    if requeue:
        optuna.Study(study_name=name, storage=storage).enqueue_trial(
            dict(row.params),
            user_attrs={
                "hone_config_number": row.config_number,
                "hone_attempt": row.attempt + 1,
                "hone_round": row.round,
            },
        )
    with session_in(db, held) as session:
        session.execute(
            update(Trial)
            .where(Trial.id == row.id)
            .values(state="failed", reason=reason[:4000], finished_at=now, updated_at=now)
        )
        _release_worker(session, row)
        if not requeue:  # a re-queued configuration keeps its round open
            _after_result(session, row, now=now, opened=opened)
    return requeue


def expire_lease(
    *,
    db: Database,
    storage: optuna.storages.RDBStorage,
    settings: Settings,
    row: Trial,
    held: Session | None,
    now: datetime,
    opened: list[Round],
) -> bool:
    """Fail a running trial whose lease ran out and re-queue it (used by the reaper).

    If Optuna already holds the trial's result (the API died after Optuna committed it and
    before hone did), that result is adopted instead: re-running the configuration would
    put it in the study twice."""
    recorded = storage.get_trial(row.trial_id)
    if recorded.state in (TrialState.COMPLETE, TrialState.PRUNED):
        outcome: Outcome = "complete" if recorded.state == TrialState.COMPLETE else "prune"
        value = recorded.value if outcome == "complete" else None
        _end(
            db,
            held,
            row=row,
            outcome=outcome,
            value=value,
            metrics=None,
            now=now,
            opened=opened,
        )
        logger.warning(
            "lease expired after its result reached Optuna: kept trial %s as %s", row.number, outcome
        )
        return False
    silent = (now - (row.heartbeat_at or row.started_at)).total_seconds()
    reason = f"lease expired: no heartbeat for {silent:.0f} s (worker {row.worker_id})"
    return _fail(
        db,
        held,
        storage=storage,
        settings=settings,
        row=row,
        reason=reason,
        retry=True,
        now=now,
        opened=opened,
    )
