"""What Optuna's rung pruners (successive halving, Hyperband) recorded when they judged a
trial: the rung, its value there and the values it competed with. The rung values are
trial system attributes Optuna's pruner writes (``completed_rung_<k>``); Hyperband's
brackets are its private state."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.pruners import BasePruner, HyperbandPruner, PatientPruner
from optuna.trial import FrozenTrial


@dataclass(frozen=True)
class RungJudgement:
    """The last rung a trial was judged at (0-based), in Hyperband's ``bracket`` (0 for
    successive halving), its value there and the values it competed with (its own too)."""

    rung: int
    bracket: int
    value: float
    competing: list[float]


def _rung_key(rung: int) -> str:
    return f"completed_rung_{rung}"


def rung_judgement(study: optuna.Study, trial: FrozenTrial) -> RungJudgement | None:
    """How the study's rung pruner judged ``trial`` (read after it judged); None when it
    recorded no rung (a NaN value is pruned without one)."""
    pruner: BasePruner | None = study.pruner
    while isinstance(pruner, PatientPruner):
        pruner = pruner._wrapped_pruner
    bracket = 0
    if isinstance(pruner, HyperbandPruner):
        bracket = pruner._get_bracket_id(study, trial)
        study = pruner._create_bracket_study(study, bracket)
    rung = -1
    while _rung_key(rung + 1) in trial.system_attrs:
        rung += 1
    if rung < 0:
        return None
    key = _rung_key(rung)
    value = float(trial.system_attrs[key])
    others = [
        float(t.system_attrs[key])
        for t in study.get_trials(deepcopy=False)
        if key in t.system_attrs and t.number != trial.number
    ]
    return RungJudgement(rung=rung, bracket=bracket, value=value, competing=[*others, value])
