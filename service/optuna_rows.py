"""Writes to Optuna's own tables through hone's session, for the lease hot path.

Each call of Optuna's storage API is its own transaction (its own commit, on SQLite its
own wait for the write lock): ``suggest_*`` ten parameters is ten commits, a report one
more next to hone's own. Here the rows Optuna would write go into the caller's
transaction instead, so a grant or a report is one commit. The rows are exactly Optuna's
(its table definitions, its value encodings), and optuna-dashboard reads them as usual.

Trials are still created by Optuna (``storage.create_new_trial``: the trial number is
Optuna's to assign) and finished by Optuna (``set_trial_state_values``).
"""

from __future__ import annotations

import json
from typing import Any

from optuna.distributions import BaseDistribution, distribution_to_json
from optuna.storages._rdb.models import (
    TrialIntermediateValueModel,
    TrialModel,
    TrialParamModel,
    TrialUserAttributeModel,
)
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

_trials = TrialModel.__table__
_params = TrialParamModel.__table__
_user_attrs = TrialUserAttributeModel.__table__
_intermediate = TrialIntermediateValueModel.__table__


def trial_number(session: Session, trial_id: int) -> int:
    """The number Optuna gave the trial."""
    number = session.scalar(select(_trials.c.number).where(_trials.c.trial_id == trial_id))
    assert number is not None, f"Optuna has no trial {trial_id}"
    return int(number)


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


def set_intermediate_value(session: Session, *, trial_id: int, step: int, value: float) -> None:
    """A step's value, replacing one reported before for the same step (as Optuna does).

    The caller holds the trial's lease row locked (or SQLite's write lock), so two reports
    of one step never race to insert."""
    stored, kind = TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
    where = (_intermediate.c.trial_id == trial_id, _intermediate.c.step == step)
    result = session.execute(
        update(_intermediate).where(*where).values(intermediate_value=stored, intermediate_value_type=kind)
    )
    if getattr(result, "rowcount", 0) == 0:
        session.execute(
            insert(_intermediate).values(
                trial_id=trial_id, step=step, intermediate_value=stored, intermediate_value_type=kind
            )
        )


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
