"""Reports and the study's pruner: each step's value is recorded, then the pruner judges.

A report is one transaction: the lease is checked, the values written to Optuna's table
and the trial's row updated. The pruner runs after it (it only reads), and not at all
where it provably cannot prune yet (warm-up steps, too few completed trials). It reads the
study's finished trials through :class:`service.optuna_tables.PrunerStorage`, which reads
each finished trial once per process.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from sqlalchemy import update

from service import leases, optuna_tables
from service.backend import Backend
from service.caches import CACHE_STUDIES, Recent, StudyKey, study_key, study_spec
from service.errors import Conflict
from service.spec import StudySpec
from service.tables import Study, Trial


def report(
    backend: Backend,
    *,
    lease_id: str,
    step: int,
    value: float,
    now: datetime,
    earlier: Mapping[int, float] | None = None,
) -> bool:
    """Record a step's value; True when the study's pruner says the trial should stop.

    ``earlier`` are steps the worker held back and sends along (it coalesces steps that
    come faster than a round trip is worth); they are recorded too, and the pruner
    decides on ``step``. A step at or past the objective's last epoch (``max_epochs``;
    steps count from 1) is never pruned: nothing is left to save, and the result is due."""
    db, storage = backend.db, backend.storage
    with db.transaction() as session:
        row = leases.lease_row(session, lease_id, lock=not db.is_sqlite)
        leases.check_live(row, now)
        if optuna_tables.trial_state(session, row.trial_id) != TrialState.RUNNING:
            raise Conflict(f"lease {lease_id} is over: Optuna's trial {row.number} is finished")
        values = {**(earlier or {}), step: value}
        optuna_tables.set_intermediate_values(session, trial_id=row.trial_id, values=values)
        session.execute(
            update(Trial)
            .where(Trial.id == row.id, Trial.state == "running")
            .values(last_step=step, heartbeat_at=now, updated_at=now)
        )
        study_row = session.get(Study, row.study_id)
        assert study_row is not None
        spec = study_spec(study_row)
        if not spec.pruner.ever_prunes or step >= spec.objective.max_epochs:
            return False
        finished = _pruner_storage(storage, study_row)
        finished.probe(session, row.study_id)
        if not spec.pruner.may_prune(completed=finished.completed(row.study_id), step=step):
            return False
        trial = None
        if spec.pruner.reads_own_values_only:
            trial = optuna_tables.reported_trial(session, trial_id=row.trial_id, number=row.number)
    finished.load(row.study_id)
    study = _pruning_study(finished, study_row, spec)
    try:
        prune = study.pruner.prune(study, trial or storage.get_trial(row.trial_id))
    except (UpdateFinishedTrialError, RuntimeError) as error:
        raise Conflict(f"lease {lease_id} is over: {error}") from error
    if prune:
        # Read again: a rung pruner records the rung it judged at on the trial.
        judged = storage.get_trial(row.trial_id)
        why = spec.pruner.explain(
            study, judged, metric=spec.objective.metric, max_epochs=spec.objective.max_epochs
        )
        reason = f"pruned by the {spec.pruner.type} pruner: {why}"
        with db.transaction() as session:
            session.execute(
                update(Trial).where(Trial.id == row.id, Trial.state == "running").values(reason=reason)
            )
    return bool(prune)


_pruner_storages: Recent[StudyKey, optuna_tables.PrunerStorage] = Recent(CACHE_STUDIES)
_pruning_studies: Recent[StudyKey, optuna.Study] = Recent(CACHE_STUDIES)


def _pruner_storage(storage: optuna.storages.RDBStorage, study_row: Study) -> optuna_tables.PrunerStorage:
    """The study's finished trials as its pruner sees them, kept per process."""
    return _pruner_storages.get(
        study_key(storage, study_row),
        lambda: optuna_tables.PrunerStorage(storage),
        still_valid=lambda found: found.serves(storage),
    )


def _pruning_study(finished: optuna_tables.PrunerStorage, study_row: Study, spec: StudySpec) -> optuna.Study:
    """An Optuna Study with the spec's pruner over ``finished``, made once per process
    (making one reads the database; pruners keep no state that another report could spoil)."""
    return _pruning_studies.get(
        study_key(finished, study_row),
        lambda: optuna.Study(
            study_name=study_row.name,
            storage=finished,
            sampler=optuna.samplers.RandomSampler(),  # cheap before_trial; nothing is sampled here
            pruner=spec.pruner.build(spec.objective.max_epochs),
        ),
    )
