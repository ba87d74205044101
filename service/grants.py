"""Granting trials: choose a study that has work and room, open a trial, hand out its lease.

Order of work for a grant: Optuna's WAITING trials first (retries and enqueued
configurations), then new configurations sampled in the current round's box while the
round's budget lasts. Studies share workers fairly: the study granted longest ago goes
first. Budgets (a round's configurations, ``max_concurrent``) are checked and the trial
opened in one transaction: on SQLite under ``Database.process_lock``; on PostgreSQL under
the chosen study's advisory lock (:mod:`service.study_locks`), so several API processes
never exceed a budget. A grant passes over a study another transaction holds and waits
for one only when every study with work was held, holding no lock while it waits.

Lease requests that arrive while this process is serving one wait in a queue, and the next
turn serves them together (:mod:`service.combining`): one transaction, one turn of the
study's lock, one statement per table for all the configurations it draws. With many
workers on one study, that turn is what every grant waits for (issue #24). A turn gives one
study at most its fair share of the queue (divided among the studies that may have work),
so that studies still share the workers; when no study has work, every request that asked
for the same studies gets that answer in the same turn.

However a trial is opened — drawn from the box, popped from the queue, or asked of a
sampler that reads the study's history — :func:`_hand_out` writes hone's rows and the
leases the same way.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from protocol import Objective
from service import optuna_tables, rounds, study_locks, worker_registry
from service.backend import Backend
from service.box_sampler import BoxSampler
from service.caches import study_key, study_spec
from service.combining import Combiner
from service.sampling import suggest_params
from service.spec import StudySpec
from service.tables import Round, Study, Trial, UTCDateTime, utcnow

# Rounds one grant may open on its way (each commits before an ask); past that, the grant
# asks after its commit as on SQLite. One more turn may wait for a study held elsewhere.
_MAX_ADVANCES = 4
_UNLIMITED = 1 << 30  # a study's max_concurrent slots when it sets none


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

    def visit(self, holds: tuple[int, int] | None = None) -> worker_registry.Visit:
        return worker_registry.Visit(self.worker, self.host, self.devices, self.now, holds)

    def seen(self, session: Session) -> None:
        """Recorded as having asked, and holding nothing (no work for it)."""
        worker_registry.seen(session, [self.visit()])


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
    slots: int  # trials max_concurrent still lets run (_UNLIMITED without one)
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


@dataclass(frozen=True)
class _Ask:
    """One lease request: who asks, and the studies it will run (None: any)."""

    asker: _Asker
    studies: list[int] | None

    def admits(self, study_id: int) -> bool:
        return self.studies is None or study_id in self.studies


def grant_lease(
    backend: Backend,
    *,
    worker: str,
    devices: list[str],
    studies: list[int] | None,
    host: str | None = None,
    now: datetime,
) -> Grant | None:
    """Lease the next trial to ``worker``, or None when no running study has work and room.

    Requests that wait in this process while another is served are served together
    (:mod:`service.combining`): one transaction, one turn of the study's lock, grants to
    each of them that the chosen study can take."""
    queue: Combiner[_Ask, Grant | None] = backend.db.grant_queue
    ask = _Ask(_Asker(worker, host, devices, now), studies)
    return queue.submit(ask, functools.partial(_serve, backend), shared=_database_unavailable)


def _database_unavailable(error: BaseException) -> bool:
    """An error every grant of a turn would meet: each request answers 503 now, rather
    than after its own turn has waited for the database in vain."""
    return isinstance(error, OperationalError) or (
        isinstance(error, DBAPIError) and error.connection_invalidated
    )


def _serve(backend: Backend, asks: Sequence[_Ask]) -> dict[int, Grant | None]:
    """Answers to ``asks`` by position: the first as a lone request would be answered; the
    others that the first's study admits too, in the same transaction, while the study has
    room and they are within its fair share of the batch (samplers that draw without
    history only: a sampler that reads the history asks Optuna for one trial at a time).
    Asks left unanswered are served by a later batch."""
    db = backend.db
    first = asks[0].asker
    wait_for: int | None = None
    answers: dict[int, Grant | None] | None = None
    with db.process_lock:
        for _ in range(_MAX_ADVANCES + 1):
            with db.transaction() as session:
                if wait_for is not None:
                    study_locks.lock_study(session, wait_for)
                candidate, busy, running = _choose(
                    session, studies=asks[0].studies, now=first.now, held=wait_for
                )
                if candidate is None:
                    if busy is not None and busy != wait_for:
                        # Every study with work was held by another grant: wait for the
                        # first one in a new transaction, holding no other lock meanwhile.
                        wait_for = busy
                        continue
                    # Every ask that admits the same studies would get the same answer.
                    alike = [i for i, ask in enumerate(asks) if ask.studies == asks[0].studies]
                    worker_registry.seen(session, [asks[i].asker.visit() for i in alike])
                    answers = dict.fromkeys(alike)
                elif candidate.spec.sampler.draws_without_history:
                    answers = _hand_out_draws(
                        session, backend, candidate, asks, share=-(-len(asks) // running)
                    )
                elif db.is_sqlite:
                    break
                elif not candidate.advanced:
                    # The study's lock is held while Optuna's ask commits on its own
                    # connection, which never waits on an advisory lock.
                    answers = dict(
                        enumerate(_hand_out(session, backend, candidate, [_ask(backend, candidate)], [first]))
                    )
                else:
                    # A round opened here published its box to Optuna's study row, which
                    # Optuna's ask locks on its own connection: commit that first, then grant anew.
                    wait_for = None
                    continue
            if answers is not None:  # committed
                return answers
        # SQLite: Optuna's ask writes on its own connection, which would wait for the write
        # lock of a transaction held open around it; the process lock keeps the choice valid.
        if candidate is None:  # the last turn waited for a study and found it had no room
            return {0: None}
        opened = _ask(backend, candidate)
        with db.transaction() as session:
            granted = _hand_out(session, backend, candidate, [opened], [first])
        return dict(enumerate(granted))


def _hand_out_draws(
    session: Session, backend: Backend, candidate: _Candidate, asks: Sequence[_Ask], *, share: int
) -> dict[int, Grant | None]:
    """Trials of the candidate's study for ``asks[0]`` and the other asks it admits, up to
    ``share`` of them: WAITING trials first, then new configurations drawn in the box."""
    study = candidate.study
    takers = [position for position, ask in enumerate(asks) if position == 0 or ask.admits(study.id)][:share]
    answers: dict[int, Grant | None] = {}
    current: _Candidate | None = candidate
    # Retries and users' configurations (rare) one at a time, each granted before the next
    # is chosen: popping one may take a slot of the round's budget.
    for position in takers:
        if current is None or not current.waiting:
            break
        popped = _pop(session, current, lock=not backend.db.is_sqlite)
        if popped is None:
            break
        [answers[position]] = _hand_out(session, backend, current, [popped], [asks[position].asker])
        # Read again in this transaction; never advanced here: the trials just granted are
        # running, so the round cannot have ended.
        current = _candidate(session, study=study, now=asks[0].asker.now, advance=False)
    rest = [position for position in takers if position not in answers]
    count = min(len(rest), current.room, current.slots) if current is not None else 0
    if current is not None and count > 0:
        served = rest[:count]
        opened = _draw(session, current, count)
        granted = _hand_out(session, backend, current, opened, [asks[position].asker for position in served])
        answers.update(zip(served, granted, strict=True))
    if not answers:
        asks[0].asker.seen(session)
        answers[0] = None
    return answers


def _choose(
    session: Session, *, studies: list[int] | None, now: datetime, held: int | None
) -> tuple[_Candidate | None, int | None, int]:
    """The first running study, in turn, with room for a grant; the first study passed over
    because another transaction held its lock (``held``: one this transaction holds); and
    how many studies may have work: the running ones, less those passed over for having
    no room now (a turn's fair share divides the queue among the others)."""
    query, params = (_RUNNING_OF, {"ids": studies}) if studies else (_RUNNING, {})
    busy: int | None = None
    running = list(session.connection().scalars(query, params))
    idle = 0
    for study_id in running:
        if study_id != held and not study_locks.try_lock_study(session, study_id):
            busy = study_id if busy is None else busy
            continue
        # Read after the lock (each statement sees what committed before it): the study
        # as the previous holder left it.
        study = session.get(Study, study_id, populate_existing=True)
        candidate = None if study is None else _candidate(session, study=study, now=now)
        if candidate is not None:
            return candidate, busy, len(running) - idle
        idle += 1
    return None, busy, max(len(running) - idle, 1)


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


def _candidate(session: Session, *, study: Study, now: datetime, advance: bool = True) -> _Candidate | None:
    """The study's next grant, if it has room for one: a WAITING trial or a new configuration."""
    if study.status != "running":
        return None
    state = _round_state(session, study)
    advanced = False
    if advance and state is not None and state[2] == 0 and state[1] <= 0:
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
    slots = _UNLIMITED
    if study.max_concurrent is not None:
        slots = study.max_concurrent - _running(session, study.id)
        if slots <= 0:
            return None
    return _Candidate(
        study=study,
        spec=study_spec(study),
        box=dict(current.box),
        round=current.number,
        index=current.budget - room,
        room=room,
        waiting=waiting,
        slots=slots,
        advanced=advanced,
        max_epochs=rounds.epochs(study_spec(study), current),
    )


def _running(session: Session, study_id: int) -> int:
    return int(session.connection().scalar(_RUNNING_TRIALS, {"study": study_id}) or 0)


def _values(
    candidate: _Candidate, *, number: int, index: int, fixed: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, BaseDistribution]]:
    """Trial ``number``'s parameters — ``fixed`` ones as given, the rest drawn in the box
    (Sobol: the round's point ``index``) — as ``suggest_*`` would write them, with their
    distributions."""
    sampler = candidate.spec.sampler.build(candidate.spec, box=candidate.box, index=index)
    assert isinstance(sampler, BoxSampler)
    values = {
        name: fixed[name] if name in fixed else sampler.value(number, name) for name in candidate.spec.space
    }
    drawn = optuna.trial.FixedTrial(values, number)
    return suggest_params(drawn, candidate.spec), drawn.distributions


def _draw(session: Session, candidate: _Candidate, count: int) -> list[_Opened]:
    """``count`` new configurations from the box sampler: the trials ``study.ask()`` +
    ``suggest_*`` would make (same numbers, params, distributions and ``hone_round``), in
    this transaction, with one statement per table for all of them."""
    created = optuna_tables.create_trials(session, study_id=candidate.study.id, count=count)
    drawn = [
        _values(candidate, number=number, index=candidate.index + i, fixed={})
        for i, (_, number) in enumerate(created)
    ]
    optuna_tables.add_params(
        session, trials=[(trial_id, *values) for (trial_id, _), values in zip(created, drawn, strict=True)]
    )
    optuna_tables.add_user_attrs(
        session, trial_ids=[trial_id for trial_id, _ in created], attrs={"hone_round": candidate.round}
    )
    return [
        _Opened(trial_id, number, params, candidate.round, config_number=number, attempt=0)
        for (trial_id, number), (params, _) in zip(created, drawn, strict=True)
    ]


def _pop(session: Session, candidate: _Candidate, *, lock: bool) -> _Opened | None:
    """The oldest WAITING trial (a retry, or a user's configuration), as ``study.ask()``
    pops it; None when another replica holds every one."""
    popped = optuna_tables.pop_waiting(session, study_id=candidate.study.id, lock=lock)
    if popped is None:
        return None
    trial_id, number, fixed, attrs = popped
    params, distributions = _values(candidate, number=number, index=candidate.index, fixed=fixed)
    optuna_tables.add_params(session, trials=[(trial_id, params, distributions)])
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
    session: Session,
    backend: Backend,
    candidate: _Candidate,
    opened: Sequence[_Opened],
    askers: Sequence[_Asker],
) -> list[Grant]:
    """hone's rows for the opened trials, each with its lease for the asker in the same
    place; the study's turn and the workers' records."""
    study = candidate.study
    settings = backend.settings
    # A lease's grace counts from now, when it is handed out, not from when its request
    # arrived: a request that waited for its turn (the study's lock held, a slow box) would
    # otherwise get a lease that is already running out, and its trial lost and retried.
    served = utcnow()
    granted = [
        (trial, asker, uuid.uuid4().hex, max(asker.now, served) + timedelta(seconds=settings.grace_period))
        for trial, asker in zip(opened, askers, strict=True)
    ]
    # Core statements built once, on the session's connection: the ORM's unit of work and
    # statement building cost more CPU than the SQL, under the study's lock (issue #24).
    connection = session.connection()
    connection.execute(
        _INSERT_TRIAL,
        [
            {
                "study_id": study.id,
                "trial_id": trial.trial_id,
                "number": trial.number,
                "round": trial.round,
                "config_number": trial.config_number,
                "attempt": trial.attempt,
                "state": "running",
                "params": trial.params,
                "lease_id": lease_id,
                "lease_expires_at": expires,
                "heartbeat_at": asker.now,
                "worker_id": asker.worker,
                "started_at": asker.now,
                "updated_at": asker.now,
            }
            for trial, asker, lease_id, expires in granted
        ],
    )
    connection.execute(_GRANTED, {"study": study.id, "at": max(asker.now for asker in askers)})
    worker_registry.seen(session, [asker.visit((study.id, trial.number)) for trial, asker, _, _ in granted])
    return [
        Grant(
            lease_id=lease_id,
            expires_at=expires,
            heartbeat_interval=settings.heartbeat_interval,
            study_id=study.id,
            study_name=study.name,
            number=trial.number,
            params=trial.params,
            round=trial.round,
            objective=_objective(session, candidate, trial),
        )
        for trial, _, lease_id, expires in granted
    ]


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
