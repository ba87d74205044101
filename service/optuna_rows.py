"""Writes to Optuna's own tables through hone's session, for the lease hot path.

Each call of Optuna's storage API is its own transaction (its own commit, on SQLite its
own wait for the write lock): ``suggest_*`` ten parameters is ten commits, a report one
more next to hone's own. Here the rows Optuna would write go into the caller's
transaction instead, so a grant or a report is one commit. The rows are exactly Optuna's
(its table definitions, its value encodings), and optuna-dashboard reads them as usual.

A sampled trial is created here too, numbered the way Optuna numbers it (under a lock on
Optuna's study row, the trials before it counted). A lease's trial is finished here, as ``set_trial_state_values`` would,
so that its value, its metrics and hone's own row commit together: no crash can leave
Optuna with a result that hone has not recorded. Failures and the reaper still go through
Optuna's storage.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from optuna.distributions import BaseDistribution, distribution_to_json
from optuna.storages._rdb.models import (
    StudyModel,
    TrialIntermediateValueModel,
    TrialModel,
    TrialParamModel,
    TrialUserAttributeModel,
    TrialValueModel,
)
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

_studies = StudyModel.__table__
_trials = TrialModel.__table__
_params = TrialParamModel.__table__
_user_attrs = TrialUserAttributeModel.__table__
_intermediate = TrialIntermediateValueModel.__table__
_values = TrialValueModel.__table__


def create_trial(session: Session, *, study_id: int) -> tuple[int, int]:
    """A new RUNNING trial of the study, as ``storage.create_new_trial`` makes it: Optuna's
    study row locked (Optuna's own guard for numbering), number = the trials before it.
    Returns ``(trial_id, number)``."""
    session.execute(select(_studies.c.study_id).where(_studies.c.study_id == study_id).with_for_update())
    before = select(func.count()).where(_trials.c.study_id == study_id).scalar_subquery()
    row = session.execute(
        insert(_trials)
        .values(study_id=study_id, number=before, state=TrialState.RUNNING, datetime_start=datetime.now())
        .returning(_trials.c.trial_id, _trials.c.number)
    ).one()
    return int(row[0]), int(row[1])


def trial_state(session: Session, trial_id: int) -> TrialState | None:
    state = session.scalar(select(_trials.c.state).where(_trials.c.trial_id == trial_id))
    return state if state is None else TrialState(state)


def add_params(
    session: Session,
    *,
    trial_id: int,
    params: dict[str, Any],
    distributions: dict[str, BaseDistribution],
) -> None:
    """A new trial's parameters, as ``trial.suggest_*`` stores them (internal representation)."""
    if not params:
        return
    rows = [
        {
            "trial_id": trial_id,
            "param_name": name,
            "param_value": distributions[name].to_internal_repr(value),
            "distribution_json": distribution_to_json(distributions[name]),
        }
        for name, value in params.items()
    ]
    session.execute(insert(_params), rows)


def add_user_attrs(session: Session, *, trial_id: int, attrs: dict[str, Any]) -> None:
    """User attributes of a trial that has none of these keys yet."""
    if attrs:
        rows = [{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()]
        session.execute(insert(_user_attrs), rows)


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


def set_user_attr(session: Session, *, trial_id: int, key: str, value: Any) -> None:
    """One user attribute, replacing any earlier value of ``key``."""
    where = (_user_attrs.c.trial_id == trial_id, _user_attrs.c.key == key)
    session.execute(delete(_user_attrs).where(*where))
    add_user_attrs(session, trial_id=trial_id, attrs={key: value})


def finish_trial(
    session: Session, *, trial_id: int, state: TrialState, values: Sequence[float] | None
) -> bool:
    """A RUNNING trial to a finished ``state`` with its ``values``, as Optuna's
    ``set_trial_state_values`` stores it (local time, like Optuna); False when the trial
    was not running (finished already: nothing is changed)."""
    assert state.is_finished()
    result = session.execute(
        update(_trials)
        .where(_trials.c.trial_id == trial_id, _trials.c.state == TrialState.RUNNING)
        .values(state=state, datetime_complete=datetime.now())
    )
    if getattr(result, "rowcount", 0) != 1:
        return False
    if values:
        rows = []
        for objective, value in enumerate(values):
            stored, kind = TrialValueModel.value_to_stored_repr(value)
            rows.append({"trial_id": trial_id, "objective": objective, "value": stored, "value_type": kind})
        session.execute(insert(_values), rows)
    return True


def last_intermediate(session: Session, trial_id: int) -> float | None:
    """The value of the trial's highest reported step."""
    query = (
        select(_intermediate.c.intermediate_value, _intermediate.c.intermediate_value_type)
        .where(_intermediate.c.trial_id == trial_id)
        .order_by(_intermediate.c.step.desc())
        .limit(1)
    )
    found = session.execute(query).first()
    if found is None:
        return None
    return float(TrialIntermediateValueModel.stored_repr_to_intermediate_value(found[0], found[1]))


def reported_trial(session: Session, *, trial_id: int, number: int) -> FrozenTrial:
    """A running trial with its intermediate values only (what a percentile pruner reads)."""
    query = select(
        _intermediate.c.step, _intermediate.c.intermediate_value, _intermediate.c.intermediate_value_type
    )
    values = {
        int(step): TrialIntermediateValueModel.stored_repr_to_intermediate_value(value, kind)
        for step, value, kind in session.execute(query.where(_intermediate.c.trial_id == trial_id))
    }
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
        intermediate_values=values,
        trial_id=trial_id,
    )
