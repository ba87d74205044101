"""Granting trials: choose a study that has work and room, open a trial, hand out its lease.

Order of work for a grant: Optuna's WAITING trials first (retries and enqueued
configurations), then new configurations sampled in the current round's box while the
round's budget lasts. Studies share workers fairly: the study granted longest ago goes
first. Budgets (a round's configurations, ``max_concurrent``) are checked and the trial
opened in one transaction: on SQLite under ``Database.process_lock``; on PostgreSQL under
the chosen study's advisory lock (:mod:`service.study_locks`), so several API processes
never exceed a budget. A grant passes over a study another transaction holds and waits
for one only when every study with work was held, holding no lock while it waits.

However a trial is opened — drawn from the box, popped from the queue, or asked of a
sampler that reads the study's history — :func:`_hand_out` writes hone's row and the lease
the same way.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import optuna
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from protocol import Objective
from service import optuna_tables, rounds, study_locks, worker_registry
from service.backend import Backend
from service.box_sampler import BoxSampler
from service.caches import study_key, study_spec
from service.sampling import suggest_params
from service.spec import StudySpec
from service.tables import Round, Study, Trial, UTCDateTime

# Rounds one grant may open on its way (each commits before an ask); past that, the grant
# asks after its commit as on SQLite. One more turn may wait for a study held elsewhere.
_MAX_ADVANCES = 4


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
    objective: Objective


@dataclass(frozen=True)
class _Asker:
    """The worker asking for a trial, as the registry records it."""

    worker: str
    host: str | None
    devices: list[str]
    now: datetime

    def seen(self, session: Session, holds: tuple[int, int] | None = None) -> None:
        worker_registry.seen(
            session, worker=self.worker, host=self.host, devices=self.devices, now=self.now, holds=holds
        )


@dataclass(frozen=True)
class _Candidate:
    """A study with room for one more trial now, and where its next one comes from."""

    study: Study
    spec: StudySpec
    box: dict[str, Any]
    round: int
    index: int  # the configuration's position in its round (Sobol's point)
    room: int  # configurations the round's budget still lets start
    waiting: int  # Optuna WAITING trials: retries and enqueued configurations
    advanced: bool  # this transaction opened a round (or completed the study) to get here
    max_epochs: int  # what each trial of the current round trains (the recipe may raise it)


@dataclass(frozen=True)
class _Opened:
    """An Optuna trial opened for a grant, and the configuration it is an attempt of."""

    trial_id: int
    number: int
    params: dict[str, Any]
    round: int
    config_number: int
    attempt: int


def grant_lease(
    backend: Backend,
    *,
    worker: str,
    devices: list[str],
    studies: list[int] | None,
    host: str | None = None,
    now: datetime,
) -> Grant | None:
    """Lease the next trial to ``worker``, or None when no running study has work and room."""
    db = backend.db
    asker = _Asker(worker, host, devices, now)
    wait_for: int | None = None
    with db.process_lock:
        for _ in range(_MAX_ADVANCES + 1):
            with db.transaction() as session:
                if wait_for is not None:
                    study_locks.lock_study(session, wait_for)
                candidate, busy = _choose(session, studies=studies, now=now, held=wait_for)
                if candidate is None:
                    if busy is not None and busy != wait_for:
                        # Every study with work was held by another grant: wait for the
                        # first one in a new transaction, holding no other lock meanwhile.
                        wait_for = busy
                        continue
                    asker.seen(session)
                    return None
                if candidate.spec.sampler.draws_without_history:
                    opened = _pop(session, candidate, lock=not db.is_sqlite) if candidate.waiting else None
                    if opened is None and candidate.room <= 0:
                        asker.seen(session)
                        return None
                    return _hand_out(session, backend, candidate, opened or _draw(session, candidate), asker)
                if db.is_sqlite:
                    break
                if not candidate.advanced:
                    # The study's lock is held while Optuna's ask commits on its own
                    # connection, which never waits on an advisory lock.
                    return _hand_out(session, backend, candidate, _ask(backend, candidate), asker)
                # A round opened here published its box to Optuna's study row, which Optuna's
                # ask locks on its own connection: commit that first, then grant anew.
                wait_for = None
        # SQLite: Optuna's ask writes on its own connection, which would wait for the write
        # lock of a transaction held open around it; the process lock keeps the choice valid.
        if candidate is None:  # the last turn waited for a study and found it had no room
            return None
        opened = _ask(backend, candidate)
        with db.transaction() as session:
            return _hand_out(session, backend, candidate, opened, asker)


def _choose(
    session: Session, *, studies: list[int] | None, now: datetime, held: int | None
) -> tuple[_Candidate | None, int | None]:
    """The first running study, in turn, with room for a grant; and the first study passed
    over because another transaction held its lock (``held``: one this transaction holds)."""
    query, params = (_RUNNING_OF, {"ids": studies}) if studies else (_RUNNING, {})
    busy: int | None = None
    for study_id in list(session.connection().scalars(query, params)):
        if study_id != held and not study_locks.try_lock_study(session, study_id):
            busy = study_id if busy is None else busy
            continue
        # Read after the lock (each statement sees what committed before it): the study
        # as the previous holder left it.
        study = session.get(Study, study_id, populate_existing=True)
        if study is None:
            continue
        candidate = _candidate(session, study=study, now=now)
        if candidate is not None:
            return candidate, busy
    return None, busy


def _round_state(session: Session, study: Study) -> tuple[Round, int, int] | None:
    """The current round, its room and the study's WAITING trials: one query (every grant)."""
    found = session.execute(_ROUND_STATE, {"study": study.id, "round": study.current_round}).first()
    return None if found is None else (found[0], int(found[1] or 0), int(found[2] or 0))


# Every grant runs these, under a study's lock: built once, with bound parameters.
_RUNNING = (
    select(Study.id)
    .where(Study.status == "running")
    .order_by(Study.last_granted_at.asc().nulls_first(), Study.id)
)
_RUNNING_OF = _RUNNING.where(Study.id.in_(bindparam("ids", expanding=True)))
_ROUND_STATE = select(
    Round,
    rounds.room(bindparam("study"), bindparam("round")),
    optuna_tables.waiting_query(bindparam("study")),
).where(Round.study_id == bindparam("study"), Round.number == bindparam("round"))
_RUNNING_TRIALS = select(func.count()).where(Trial.study_id == bindparam("study"), Trial.state == "running")


def _candidate(session: Session, *, study: Study, now: datetime) -> _Candidate | None:
    """The study's next grant, if it has room for one: a WAITING trial or a new configuration."""
    if study.status != "running":
        return None
    state = _round_state(session, study)
    advanced = False
    if state is not None and state[2] == 0 and state[1] <= 0:
        # The round's budget is out: it may have finished, opening the next round or
        # completing the study (the only case in which advancing can change anything).
        advanced = rounds.advance(session, study=study, now=now, pending_retries=0)
        if study.status != "running":
            return None
        state = _round_state(session, study)
    if state is None:
        return None
    current, room, waiting = state
    if room <= 0 and waiting == 0:
        return None
    if study.max_concurrent is not None and _running(session, study.id) >= study.max_concurrent:
        return None
    return _Candidate(
        study=study,
        spec=study_spec(study),
        box=dict(current.box),
        round=current.number,
        index=current.budget - room,
        room=room,
        waiting=waiting,
        advanced=advanced,
        max_epochs=rounds.epochs(study_spec(study), current),
    )


def _running(session: Session, study_id: int) -> int:
    return int(session.connection().scalar(_RUNNING_TRIALS, {"study": study_id}) or 0)


def _fill(
    session: Session, candidate: _Candidate, *, trial_id: int, number: int, fixed: dict[str, Any]
) -> dict[str, Any]:
    """The trial's parameters — ``fixed`` ones as given, the rest drawn in the box — written
    as ``suggest_*`` would write them."""
    sampler = candidate.spec.sampler.build(candidate.spec, box=candidate.box, index=candidate.index)
    assert isinstance(sampler, BoxSampler)
    values = {
        name: fixed[name] if name in fixed else sampler.value(number, name) for name in candidate.spec.space
    }
    drawn = optuna.trial.FixedTrial(values, number)
    params = suggest_params(drawn, candidate.spec)
    optuna_tables.add_params(session, trial_id=trial_id, params=params, distributions=drawn.distributions)
    return params


def _draw(session: Session, candidate: _Candidate) -> _Opened:
    """A new configuration from the box sampler: the trial ``study.ask()`` + ``suggest_*``
    would make (same number, params, distributions and ``hone_round``), in this transaction."""
    trial_id, number = optuna_tables.create_trial(session, study_id=candidate.study.id)
    params = _fill(session, candidate, trial_id=trial_id, number=number, fixed={})
    optuna_tables.add_user_attrs(session, trial_id=trial_id, attrs={"hone_round": candidate.round})
    return _Opened(trial_id, number, params, candidate.round, config_number=number, attempt=0)


def _pop(session: Session, candidate: _Candidate, *, lock: bool) -> _Opened | None:
    """The oldest WAITING trial (a retry, or a user's configuration), as ``study.ask()``
    pops it; None when another replica holds every one."""
    popped = optuna_tables.pop_waiting(session, study_id=candidate.study.id, lock=lock)
    if popped is None:
        return None
    trial_id, number, fixed, attrs = popped
    params = _fill(session, candidate, trial_id=trial_id, number=number, fixed=fixed)
    if optuna_tables.CONFIG_NUMBER_ATTR not in attrs:
        optuna_tables.set_user_attr(session, trial_id=trial_id, key="hone_round", value=candidate.round)
    return _opened(trial_id, number, params, attrs, candidate.round)


def _ask(backend: Backend, candidate: _Candidate) -> _Opened:
    """A trial from a sampler that reads the study's history (TPE, grid), through Optuna."""
    spec = candidate.spec
    trial_id, number, params, attrs = optuna_tables.ask_trial(
        backend.storage,
        cache_key=study_key(None, candidate.study),
        study_name=candidate.study.name,
        sampler=spec.sampler.build(spec, box=candidate.box, index=candidate.index),
        suggest=lambda trial: suggest_params(trial, spec),
        round_number=candidate.round,
        window=spec.sampler.history_window(),
    )
    return _opened(trial_id, number, params, attrs, candidate.round)


def _opened(trial_id: int, number: int, params: dict[str, Any], attrs: dict[str, Any], round: int) -> _Opened:
    """A popped trial: a retry keeps its configuration, attempt and round; a user's
    enqueued configuration is a new one, of the current round."""
    config_number = attrs.get(optuna_tables.CONFIG_NUMBER_ATTR)
    if config_number is None:
        return _Opened(trial_id, number, params, round, config_number=number, attempt=0)
    attempt, round = int(attrs.get("hone_attempt", 1)), int(attrs.get("hone_round", round))
    return _Opened(trial_id, number, params, round, config_number=int(config_number), attempt=attempt)


def _hand_out(
    session: Session, backend: Backend, candidate: _Candidate, opened: _Opened, asker: _Asker
) -> Grant:
    """hone's row for the opened trial, with its lease; the study's turn and the worker's record."""
    now = asker.now
    study = candidate.study
    lease_id = uuid.uuid4().hex
    expires = now + timedelta(seconds=backend.settings.grace_period)
    # Core statements built once, on the session's connection: the ORM's unit of work and
    # statement building cost more CPU than the SQL, under the study's lock (issue #24).
    connection = session.connection()
    connection.execute(
        _INSERT_TRIAL,
        {
            "study_id": study.id,
            "trial_id": opened.trial_id,
            "number": opened.number,
            "round": opened.round,
            "config_number": opened.config_number,
            "attempt": opened.attempt,
            "state": "running",
            "params": opened.params,
            "lease_id": lease_id,
            "lease_expires_at": expires,
            "heartbeat_at": now,
            "worker_id": asker.worker,
            "started_at": now,
            "updated_at": now,
        },
    )
    connection.execute(_GRANTED, {"study": study.id, "at": now})
    asker.seen(session, holds=(study.id, opened.number))
    return Grant(
        lease_id=lease_id,
        expires_at=expires,
        heartbeat_interval=backend.settings.heartbeat_interval,
        study_id=study.id,
        study_name=study.name,
        number=opened.number,
        params=opened.params,
        round=opened.round,
        objective=_objective(session, candidate, opened),
    )


_INSERT_TRIAL = insert(Trial)
# Bind names unlike the columns': an UPDATE's parameters named like a column are SET too.
_GRANTED = (
    update(Study)
    .where(Study.id == bindparam("study"))
    .values(last_granted_at=bindparam("at", type_=UTCDateTime()))
)


def _objective(session: Session, candidate: _Candidate, opened: _Opened) -> Objective:
    """The objective as the trial runs it: with its own round's epochs (a retry popped in a
    later round keeps the epochs of the round it was drawn in)."""
    objective = candidate.spec.objective
    if opened.round == candidate.round:
        epochs = candidate.max_epochs
    else:
        epochs = rounds.round_epochs(
            session, study_id=candidate.study.id, round=opened.round, spec=candidate.spec
        )
    if epochs == objective.max_epochs:
        return objective
    return objective.model_copy(update={"max_epochs": epochs})
