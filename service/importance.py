"""Parameter importances over a study's completed trials, with bounded work.

The evaluator is the request's: Optuna's default, PED-ANOVA (``ped_anova``), fANOVA
(``fanova``) or mean decrease in impurity (``mean_decrease_impurity``); the answer names
the one used. The trials are rebuilt from ``hone_trials`` (params and value) and
evaluated in an in-memory Optuna study, so the database is asked for at most ``SAMPLE``
rows: beyond that, a uniform random sample is used (and the answer says so) rather than
loading 100,000 trials.

Over the whole study the trials carry the spec's original distributions. Over one round
(``round``) they carry that round's box: every evaluator measures importance relative to
the domain it is given, and a narrowed round's trials fill a small part of the original
one (PED-ANOVA's grid over the original range would put them in one or two cells). A
trial outside its round's box (a user's enqueued configuration) is left out.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.importance import (
    BaseImportanceEvaluator,
    FanovaImportanceEvaluator,
    MeanDecreaseImpurityImportanceEvaluator,
    PedAnovaImportanceEvaluator,
)
from optuna.trial import FrozenTrial, TrialState, create_trial
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from protocol import ImportanceEvaluator, ImportanceOut
from service.caches import study_spec
from service.errors import Conflict, NotFound
from service.space import CategoricalParam, FloatParam
from service.spec import StudySpec
from service.tables import Round, Study, Trial

SAMPLE = 1000
MIN_TRIALS = 2
NAMES: dict[ImportanceEvaluator, str] = {
    "ped_anova": "PED-ANOVA",
    "fanova": "fANOVA",
    "mean_decrease_impurity": "mean decrease impurity",
}


def param_importances(
    session: Session,
    *,
    study: Study,
    evaluator: ImportanceEvaluator = "ped_anova",
    round: int | None = None,
    sample: int = SAMPLE,
) -> ImportanceOut:
    """Importances of the study's parameters (of one round's trials when ``round`` is
    given) by ``evaluator``; 404 for a round the study has not opened, 409 with fewer than
    two completed trials."""
    spec = study_spec(study)
    completed_where = [Trial.study_id == study.id, Trial.state == "complete", Trial.value.is_not(None)]
    distributions = spec.distributions()
    if round is not None:
        box = session.scalar(select(Round.box).where(Round.study_id == study.id, Round.number == round))
        if box is None:
            raise NotFound(f"study {study.id} has no round {round}")
        completed_where.append(Trial.round == round)
        distributions = _box_distributions(spec, box)
    completed = int(session.scalar(select(func.count()).select_from(Trial).where(*completed_where)) or 0)
    scope = "" if round is None else f" in round {round}"
    if completed < MIN_TRIALS:
        raise Conflict(
            f"importance needs at least {MIN_TRIALS} completed trials; the study has {completed}{scope}"
        )
    query = select(Trial.params, Trial.value).where(*completed_where)
    sampled = completed > sample
    query = query.order_by(func.random()).limit(sample) if sampled else query.order_by(Trial.number)
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
            importances = optuna.importance.get_param_importances(evaluation, evaluator=_evaluator(evaluator))
    except (ValueError, RuntimeError) as exc:
        raise Conflict(f"importance cannot be computed yet: {exc}") from None
    note = (
        f"{NAMES[evaluator]} over a uniform random sample of {len(trials)} of the {completed} "
        f"completed trials{scope}"
        if sampled
        else None
    )
    return ImportanceOut(
        importances={name: float(v) for name, v in importances.items()},
        completed_trials=completed,
        trials_used=len(trials),
        sampled=sampled,
        note=note,
        evaluator=evaluator,
        round=round,
    )


def _evaluator(name: ImportanceEvaluator) -> BaseImportanceEvaluator:
    # Seeded, so the same trials give the same answer (the forests are random).
    if name == "fanova":
        return FanovaImportanceEvaluator(seed=0)
    if name == "mean_decrease_impurity":
        return MeanDecreaseImpurityImportanceEvaluator(seed=0)
    return PedAnovaImportanceEvaluator()


def _box_distributions(spec: StudySpec, box: dict[str, Any]) -> dict[str, BaseDistribution]:
    """The spec's distributions with each parameter's bounds (or choices) from ``box``."""
    distributions = spec.distributions()
    for name, entry in box.items():
        param = spec.space.get(name)
        if param is None:
            continue
        if isinstance(param, CategoricalParam):
            distributions[name] = CategoricalDistribution(entry["choices"])
        elif isinstance(param, FloatParam):
            distributions[name] = FloatDistribution(
                entry["low"], entry["high"], log=param.scale == "log", step=param.step
            )
        else:
            distributions[name] = IntDistribution(
                entry["low"], entry["high"], log=param.scale == "log", step=param.step
            )
    return distributions


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
