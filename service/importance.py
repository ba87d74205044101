"""Parameter importances (fANOVA) over a study's completed trials, with bounded work.

The trials are rebuilt from ``hone_trials`` (params and value) against the spec's
original distributions and evaluated in an in-memory Optuna study, so the database is
asked for at most ``SAMPLE`` rows: beyond that, a uniform random sample is used (and the
answer says so) rather than loading 100,000 trials.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState, create_trial
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from protocol import ImportanceOut
from service.caches import study_spec
from service.errors import Conflict
from service.tables import Study, Trial

SAMPLE = 1000
MIN_TRIALS = 2


def param_importances(session: Session, *, study: Study, sample: int = SAMPLE) -> ImportanceOut:
    """fANOVA importances of the study's parameters; 409 with fewer than two completed trials."""
    completed_where = (Trial.study_id == study.id, Trial.state == "complete", Trial.value.is_not(None))
    completed = int(session.scalar(select(func.count()).select_from(Trial).where(*completed_where)) or 0)
    if completed < MIN_TRIALS:
        raise Conflict(f"importance needs at least {MIN_TRIALS} completed trials; the study has {completed}")
    query = select(Trial.params, Trial.value).where(*completed_where)
    sampled = completed > sample
    query = query.order_by(func.random()).limit(sample) if sampled else query.order_by(Trial.number)
    distributions = study_spec(study).distributions()
    trials = [
        trial
        for params, value in session.execute(query)
        if (trial := _frozen(params, value, distributions)) is not None
    ]
    if len(trials) < MIN_TRIALS:
        raise Conflict("too few completed trials have parameters inside the study's distributions")
    evaluation = optuna.create_study(direction="maximize" if study.direction == "maximize" else "minimize")
    evaluation.add_trials(trials)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(evaluation)
    except (ValueError, RuntimeError) as exc:
        raise Conflict(f"importance cannot be computed yet: {exc}") from None
    note = (
        f"fANOVA over a uniform random sample of {len(trials)} of the {completed} completed trials"
        if sampled
        else None
    )
    return ImportanceOut(
        importances={name: float(v) for name, v in importances.items()},
        completed_trials=completed,
        trials_used=len(trials),
        sampled=sampled,
        note=note,
    )


def _frozen(params: dict[str, Any], value: float, distributions: dict[str, Any]) -> FrozenTrial | None:
    known = {name: v for name, v in params.items() if name in distributions}
    try:
        return create_trial(
            state=TrialState.COMPLETE,
            params=known,
            distributions={name: distributions[name] for name in known},
            value=value,
        )
    except ValueError:
        return None
