"""Optuna's rows, read and written through hone's session (see the package's docstring)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from optuna.distributions import BaseDistribution, distribution_to_json
from optuna.storages._rdb.models import (
    StudyDirectionModel,
    StudyModel,
    StudySystemAttributeModel,
    StudyUserAttributeModel,
    TrialIntermediateValueModel,
    TrialModel,
    TrialParamModel,
    TrialSystemAttributeModel,
    TrialUserAttributeModel,
    TrialValueModel,
)
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from service.tables import DeletedStudy, Study, Trial

_studies = StudyModel.__table__
_study_user_attrs = StudyUserAttributeModel.__table__
_study_system_attrs = StudySystemAttributeModel.__table__
_trials = TrialModel.__table__
_params = TrialParamModel.__table__
_user_attrs = TrialUserAttributeModel.__table__
_system_attrs = TrialSystemAttributeModel.__table__
_intermediate = TrialIntermediateValueModel.__table__
_values = TrialValueModel.__table__

CONFIG_NUMBER_ATTR = "hone_config_number"


def create_study(session: Session, *, name: str, direction: str, metric: str) -> int:
    """A new Optuna study as ``optuna.create_study`` + ``set_metric_names`` make it.

    On SQLite its id is above every id ever used: SQLite would give it the id of the last
    deleted study, and an old id must answer 404, not name another study. PostgreSQL's
    sequence never reuses one."""
    study_id: int | None = None
    if session.get_bind().dialect.name == "sqlite":
        used = select(func.max(_studies.c.study_id)).union_all(select(func.max(DeletedStudy.id))).subquery()
        study_id = int(session.scalar(select(func.coalesce(func.max(used.c[0]), 0))) or 0) + 1
    study = StudyModel(
        study_id=study_id,
        study_name=name,
        directions=[StudyDirectionModel(objective=0, direction=StudyDirection[direction.upper()])],
    )
    session.add(study)
    session.flush()
    study_id = int(study.study_id)
    _set_attr(session, _study_system_attrs, study_id=study_id, key="study:metric_names", value=[metric])
    return study_id


def study_name_in_use(session: Session, name: str) -> bool:
    return session.scalar(select(_studies.c.study_id).where(_studies.c.study_name == name)) is not None


def delete_study(session: Session, study_id: int) -> None:
    """The study and every row of it (Optuna's ORM cascades, as ``optuna.delete_study``)."""
    study = session.get(StudyModel, study_id)
    if study is not None:
        session.delete(study)


def set_study_user_attr(session: Session, *, study_id: int, key: str, value: Any) -> None:
    """A study user attribute (what optuna-dashboard shows), replacing an earlier value."""
    _set_attr(session, _study_user_attrs, study_id=study_id, key=key, value=value)


def _set_attr(session: Session, table: Any, *, study_id: int, key: str, value: Any) -> None:
    where = (table.c.study_id == study_id, table.c.key == key)
    session.execute(delete(table).where(*where))
    session.execute(insert(table).values(study_id=study_id, key=key, value_json=json.dumps(value)))


def _new_trials(
    session: Session, *, study_id: int, count: int, state: TrialState, start: datetime | None
) -> list[tuple[int, int]]:
    # Optuna's own guard for numbering: its study row locked, the trials before counted.
    # Numbered here, not by a subquery per row: SQLite evaluates one for each row it inserts.
    connection = session.connection()
    connection.execute(_LOCK_STUDY_ROW, {"study": study_id})
    first = int(connection.scalar(_TRIALS_OF, {"study": study_id}) or 0)
    rows = [
        {"study_id": study_id, "number": first + i, "state": state, "datetime_start": start}
        for i in range(count)
    ]
    return [(int(trial_id), int(number)) for trial_id, number in connection.execute(_INSERT_TRIALS, rows)]


# Built once: every grant runs them, under its study's lock.
_LOCK_STUDY_ROW = (
    select(_studies.c.study_id).where(_studies.c.study_id == bindparam("study")).with_for_update()
)
_TRIALS_OF = select(func.count()).where(_trials.c.study_id == bindparam("study"))
_INSERT_TRIALS = insert(_trials).returning(_trials.c.trial_id, _trials.c.number, sort_by_parameter_order=True)
_INSERT_PARAMS = insert(_params)
_INSERT_USER_ATTRS = insert(_user_attrs)


def create_trials(session: Session, *, study_id: int, count: int) -> list[tuple[int, int]]:
    """``count`` new RUNNING trials, numbered in turn, as ``count`` calls of
    ``storage.create_new_trial`` make them: ``[(trial_id, number)]`` (one grant's, or a batch's)."""
    return _new_trials(
        session, study_id=study_id, count=count, state=TrialState.RUNNING, start=datetime.now()
    )


def enqueue_trial(
    session: Session, *, study_id: int, params: dict[str, Any], user_attrs: dict[str, Any]
) -> tuple[int, int]:
    """A WAITING trial with fixed parameters, as ``study.enqueue_trial`` makes it (a user's
    configuration, or a retry): the next grant takes it first. ``(trial_id, number)``."""
    [(trial_id, number)] = _new_trials(
        session, study_id=study_id, count=1, state=TrialState.WAITING, start=None
    )
    add_user_attrs(session, trial_ids=[trial_id], attrs=user_attrs)
    session.execute(
        insert(_system_attrs).values(trial_id=trial_id, key="fixed_params", value_json=json.dumps(params))
    )
    return trial_id, number


def waiting_query(study_id: Any) -> Any:
    """WAITING trials of the study (retries and enqueued configurations): a scalar subquery."""
    query = select(func.count()).where(_trials.c.study_id == study_id, _trials.c.state == TrialState.WAITING)
    return query.scalar_subquery()


def enqueued_configurations(session: Session, study_id: int) -> int:
    """WAITING trials that are new configurations (a user's), not retries of one."""
    is_retry = (
        select(_user_attrs.c.trial_id)
        .where(_user_attrs.c.trial_id == _trials.c.trial_id, _user_attrs.c.key == CONFIG_NUMBER_ATTR)
        .exists()
    )
    query = select(func.count()).where(
        _trials.c.study_id == study_id, _trials.c.state == TrialState.WAITING, ~is_retry
    )
    return int(session.scalar(query) or 0)


def pop_waiting(
    session: Session, *, study_id: int, lock: bool
) -> tuple[int, int, dict[str, Any], dict[str, Any]] | None:
    """The study's oldest WAITING trial, set RUNNING as ``study.ask()`` pops it:
    ``(trial_id, number, fixed params, user attributes)``, or None."""
    query = select(_trials.c.trial_id, _trials.c.number).where(
        _trials.c.study_id == study_id, _trials.c.state == TrialState.WAITING
    )
    if lock:
        query = query.with_for_update(skip_locked=True)
    found = session.execute(query.order_by(_trials.c.trial_id).limit(1)).first()
    if found is None:
        return None
    trial_id, number = int(found[0]), int(found[1])
    session.execute(
        update(_trials)
        .where(_trials.c.trial_id == trial_id)
        .values(state=TrialState.RUNNING, datetime_start=datetime.now())
    )
    return trial_id, number, _fixed_params(session, trial_id), _user_attrs_of(session, trial_id)


def _fixed_params(session: Session, trial_id: int) -> dict[str, Any]:
    where = (_system_attrs.c.trial_id == trial_id, _system_attrs.c.key == "fixed_params")
    found = session.scalar(select(_system_attrs.c.value_json).where(*where))
    return dict(json.loads(found)) if found else {}


def _user_attrs_of(session: Session, trial_id: int) -> dict[str, Any]:
    query = select(_user_attrs.c.key, _user_attrs.c.value_json).where(_user_attrs.c.trial_id == trial_id)
    return {key: json.loads(value) for key, value in session.execute(query)}


def trial_metrics(session: Session, trial_id: int) -> dict[str, float]:
    """The metrics a completed trial's result carried (its ``metrics`` user attribute)."""
    where = (_user_attrs.c.trial_id == trial_id, _user_attrs.c.key == "metrics")
    found = session.scalar(select(_user_attrs.c.value_json).where(*where))
    value = json.loads(found) if found else {}
    return {str(k): float(v) for k, v in value.items()} if isinstance(value, dict) else {}


def trial_state(session: Session, trial_id: int) -> TrialState | None:
    state = session.scalar(select(_trials.c.state).where(_trials.c.trial_id == trial_id))
    return state if state is None else TrialState(state)


def trial_value(session: Session, trial_id: int) -> float | None:
    found = session.execute(
        select(_values.c.value, _values.c.value_type).where(
            _values.c.trial_id == trial_id, _values.c.objective == 0
        )
    ).first()
    return None if found is None else float(TrialValueModel.stored_repr_to_value(found[0], found[1]))


def add_params(
    session: Session, *, trials: Sequence[tuple[int, dict[str, Any], dict[str, BaseDistribution]]]
) -> None:
    """New trials' parameters, ``(trial_id, params, distributions)`` each, as
    ``trial.suggest_*`` stores them (internal representation): one statement for all."""
    rows = [
        {
            "trial_id": trial_id,
            "param_name": name,
            "param_value": distributions[name].to_internal_repr(value),
            "distribution_json": distribution_to_json(distributions[name]),
        }
        for trial_id, params, distributions in trials
        for name, value in params.items()
    ]
    if rows:
        session.connection().execute(_INSERT_PARAMS, rows)


def add_user_attrs(session: Session, *, trial_ids: Sequence[int], attrs: dict[str, Any]) -> None:
    """The same user attributes on each of ``trial_ids``, which have none of these keys yet."""
    encoded = {key: json.dumps(value) for key, value in attrs.items()}
    rows = [{"trial_id": t, "key": k, "value_json": v} for t in trial_ids for k, v in encoded.items()]
    if rows:
        session.connection().execute(_INSERT_USER_ATTRS, rows)


def set_user_attr(session: Session, *, trial_id: int, key: str, value: Any) -> None:
    """One user attribute, replacing any earlier value of ``key``."""
    session.execute(delete(_user_attrs).where(_user_attrs.c.trial_id == trial_id, _user_attrs.c.key == key))
    add_user_attrs(session, trial_ids=[trial_id], attrs={key: value})


def set_system_attr(session: Session, *, trial_id: int, key: str, value: Any) -> None:
    """One system attribute (e.g. Optuna's ``fail_reason``), replacing an earlier value."""
    where = (_system_attrs.c.trial_id == trial_id, _system_attrs.c.key == key)
    session.execute(delete(_system_attrs).where(*where))
    session.execute(insert(_system_attrs).values(trial_id=trial_id, key=key, value_json=json.dumps(value)))


def set_intermediate_values(session: Session, *, trial_id: int, values: dict[int, float]) -> None:
    """Steps' values (one, or a worker's coalesced reports), replacing any reported before
    for the same steps, as Optuna does: one delete and one insert.

    The caller holds the trial's lease row locked (or SQLite's write lock), so two reports
    of one step never race to insert."""
    if not values:
        return
    rows = []
    for step, value in values.items():
        stored, kind = TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
        rows.append(
            {
                "trial_id": trial_id,
                "step": step,
                "intermediate_value": stored,
                "intermediate_value_type": kind,
            }
        )
    session.execute(
        delete(_intermediate).where(_intermediate.c.trial_id == trial_id, _intermediate.c.step.in_(values))
    )
    session.execute(insert(_intermediate), rows)


def finish_trial(
    session: Session, *, trial_id: int, state: TrialState, values: Sequence[float] | None
) -> bool:
    """A RUNNING trial to a finished ``state`` (complete, pruned or failed) with its
    ``values``, as ``set_trial_state_values`` stores it (local time, like Optuna); False when
    the trial was not running (finished already: nothing is changed)."""
    assert state.is_finished()
    connection = session.connection()
    result = connection.execute(_FINISH, {"trial": trial_id, "ended": state, "at": datetime.now()})
    if result.rowcount != 1:
        return False
    if values:
        rows = []
        for objective, value in enumerate(values):
            stored, kind = TrialValueModel.value_to_stored_repr(value)
            rows.append({"trial_id": trial_id, "objective": objective, "value": stored, "value_type": kind})
        connection.execute(_INSERT_VALUES, rows)
    return True


# Built once: every result runs them. Bind names unlike the columns' (an UPDATE would SET those).
_FINISH = (
    update(_trials)
    .where(_trials.c.trial_id == bindparam("trial"), _trials.c.state == TrialState.RUNNING)
    .values(state=bindparam("ended", type_=_trials.c.state.type), datetime_complete=bindparam("at"))
)
_INSERT_VALUES = insert(_values)


def _intermediate_values(session: Session, trial_id: int) -> dict[int, float]:
    query = select(
        _intermediate.c.step, _intermediate.c.intermediate_value, _intermediate.c.intermediate_value_type
    ).where(_intermediate.c.trial_id == trial_id)
    return {
        int(step): TrialIntermediateValueModel.stored_repr_to_intermediate_value(value, kind)
        for step, value, kind in session.execute(query)
    }


def intermediate_values(session: Session, trial_id: int) -> dict[int, float]:
    """A trial's reported values by step."""
    return dict(sorted(_intermediate_values(session, trial_id).items()))


def last_intermediate(session: Session, trial_id: int) -> float | None:
    """The value of the trial's highest reported step."""
    values = _intermediate_values(session, trial_id)
    return values[max(values)] if values else None


def reported_trial(session: Session, *, trial_id: int, number: int) -> FrozenTrial:
    """A running trial with its intermediate values only (what a percentile pruner reads)."""
    return FrozenTrial(
        number=number,
        state=TrialState.RUNNING,
        value=None,
        datetime_start=None,
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs={},
        system_attrs={},
        intermediate_values=_intermediate_values(session, trial_id),
        trial_id=trial_id,
    )


def orphans(session: Session, *, before: datetime, limit: int = 1000) -> list[tuple[int, int]]:
    """Optuna RUNNING trials of hone's studies that have no hone row, started before
    ``before``: an :func:`ask_trial` whose hone row a crash lost. Returns their trial ids,
    each with its study's."""
    hone_row = select(Trial.id).where(Trial.trial_id == _trials.c.trial_id).exists()
    of_hone = select(Study.id).where(Study.id == _trials.c.study_id).exists()
    query = select(_trials.c.trial_id, _trials.c.study_id, _trials.c.datetime_start).where(
        _trials.c.state == TrialState.RUNNING, ~hone_row, of_hone
    )
    local_before = before.astimezone().replace(tzinfo=None)  # Optuna stores naive local times
    return [
        (int(trial_id), int(study_id))
        for trial_id, study_id, started in session.execute(query.limit(limit))
        if started is None or started < local_before
    ]


def fail_orphan(session: Session, *, trial_id: int, reason: str) -> None:
    """Fail an orphan and, if it was a popped retry, queue its configuration again."""
    study_id = session.scalar(select(_trials.c.study_id).where(_trials.c.trial_id == trial_id))
    attrs = _user_attrs_of(session, trial_id)
    set_system_attr(session, trial_id=trial_id, key="fail_reason", value=reason)
    finish_trial(session, trial_id=trial_id, state=TrialState.FAIL, values=None)
    if CONFIG_NUMBER_ATTR in attrs and study_id is not None:
        params = _fixed_params(session, trial_id)
        enqueue_trial(session, study_id=int(study_id), params=params, user_attrs=attrs)
