"""Samplers and pruners for a study, built from its spec.

Narrowing happens here, in *where* values are drawn, never in the distributions trials
record: :func:`suggest_params` always suggests with the ORIGINAL distribution, so
Optuna's intersection search space, parameter importance and optuna-dashboard keep
every parameter, while :class:`BoxSampler` draws inside the current round's box.

Only ``random`` and ``sobol`` follow rounds' boxes. ``tpe`` models the whole space
from all completed trials (it narrows by itself), and ``grid`` walks the whole space's
grid (the baseline the lecture warns against); for both, rounds only split the budget.

Samplers are cheap and built per request: ``create_sampler(spec, box=..., index=...)``
with ``index`` = the configuration's position within its round. Draws depend only on
``(seed, trial number)`` (random) or ``(seed, index)`` (Sobol), never on which process
samples.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.exceptions import ExperimentalWarning
from optuna.pruners import (
    BasePruner,
    HyperbandPruner,
    MedianPruner,
    NopPruner,
    PatientPruner,
    PercentilePruner,
    SuccessiveHalvingPruner,
)
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler
from optuna.trial import BaseTrial, FrozenTrial, TrialState
from scipy.stats import qmc

from service.narrowing import Box, NumericRange, full_box
from service.scales import NumericParam, from_scale, scale_range, snap_nearest
from service.spec import MAX_SEED, CategoricalParam, FloatParam, PrunerSpec, StudySpec

if TYPE_CHECKING:
    from optuna.study import Study


class BoxSampler(BaseSampler):
    """Draws each parameter independently inside ``box``, uniformly on its own scale.

    Log parameters are log-uniform, reverse_log ones uniform in ``log10(1 - x)``,
    categorical ones uniform among the box's choices; steps are respected. ``kind``
    ``"random"`` seeds a generator from ``(seed, trial number, parameter)``; ``"sobol"``
    takes point ``index`` of a scrambled Sobol sequence whose dimensions are all of the
    spec's parameters in :meth:`StudySpec.param_order` (a conditional parameter that is
    not active simply leaves its coordinate unused).

    Args:
        spec: the study spec.
        box: the round's box (parameters it leaves out use their full range).
        kind: ``"random"`` or ``"sobol"``.
        seed: the study's sampler seed.
        index: the configuration's position within its round (Sobol only).
    """

    def __init__(
        self,
        spec: StudySpec,
        *,
        box: Box,
        kind: Literal["random", "sobol"] = "random",
        seed: int,
        index: int = 0,
    ) -> None:
        self._spec = spec
        self._box: Box = {**full_box(spec), **box}
        self._kind = kind
        self._seed = seed
        self._index = index
        self._dimensions = {name: i for i, name in enumerate(spec.param_order())}
        self._sobol_point: np.ndarray[Any, np.dtype[np.float64]] | None = None
        self._fallback = RandomSampler(seed=seed)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        if param_name not in self._spec.space:
            return self._fallback.sample_independent(study, trial, param_name, param_distribution)
        return self.value(trial.number, param_name)

    def value(self, number: int, name: str) -> Any:
        """Parameter ``name`` of trial ``number``: what :meth:`sample_independent` draws."""
        return value_at(self._spec.space[name], self._box[name], self.coordinate(number, name))

    def coordinate(self, number: int, name: str) -> float:
        """The point in [0, 1) that becomes parameter ``name`` of trial ``number``."""
        dimension = self._dimensions[name]
        if self._kind == "sobol":
            if self._sobol_point is None:
                engine = qmc.Sobol(len(self._dimensions), scramble=True, seed=self._seed)
                if self._index:
                    engine.fast_forward(self._index)
                self._sobol_point = engine.random(1)[0]
            return float(self._sobol_point[dimension])
        rng = np.random.default_rng([self._seed, number, dimension])
        return float(rng.random())


def value_at(param: NumericParam | CategoricalParam, entry: Any, coordinate: float) -> Any:
    """The value at ``coordinate`` in [0, 1) of ``entry`` (a box entry), on the param's scale."""
    if isinstance(param, CategoricalParam):
        choices = entry["choices"]
        return choices[min(int(coordinate * len(choices)), len(choices) - 1)]
    bounds: NumericRange = entry
    low, high = bounds["low"], bounds["high"]
    if isinstance(param, FloatParam):
        start, end = scale_range(param, low, high)
        value = from_scale(param, start + coordinate * (end - start))
        if param.step is not None:
            value = snap_nearest(param, value)
        return min(max(value, low), high)
    if param.scale == "log":
        # As Optuna does: widen by half a unit so both ends are as likely as inner values.
        start, end = math.log10(low - 0.5), math.log10(high + 0.5)
        value = round(10.0 ** (start + coordinate * (end - start)))
        return int(min(max(value, low), high))
    count = int((high - low) // param.step) + 1
    return int(low + min(int(coordinate * count), count - 1) * param.step)


class _StudyGridSampler(GridSampler):
    """Optuna's grid sampler, minus stopping the study when the grid is exhausted:
    ``study.stop()`` only works inside ``optimize``, and hone's round budgets decide."""

    def after_trial(
        self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        return None


def create_sampler(spec: StudySpec, *, box: Box, index: int) -> BaseSampler:
    """The sampler for the configuration at position ``index`` of the round sampled in ``box``."""
    seed = spec.sampler.seed
    kind = spec.sampler.type
    if kind == "tpe":
        startup = spec.sampler.n_startup_trials
        return TPESampler(
            seed=(seed + index) % (MAX_SEED + 1), n_startup_trials=10 if startup is None else startup
        )
    if kind == "grid":
        grid = {name: param.grid_values() for name, param in spec.space.items()}
        # Always the study's seed: grid ids index a seeded shuffle of the grid, so another
        # seed would make the visited ids of earlier trials point at other grid points.
        return _StudyGridSampler(grid, seed=seed)
    return BoxSampler(spec, box=box, kind=kind, seed=seed, index=index)


def create_pruner(spec: StudySpec) -> BasePruner:
    """The study's pruner; Hyperband's maximum resource is ``objective.max_epochs``."""
    return _pruner(spec.pruner, max_epochs=spec.objective.max_epochs)


def _pruner(pruner: PrunerSpec, *, max_epochs: int) -> BasePruner:
    match pruner.type:
        case "none":
            return NopPruner()
        case "median":
            return MedianPruner(
                n_startup_trials=pruner.n_startup_trials,
                n_warmup_steps=pruner.n_warmup_steps,
                interval_steps=pruner.interval_steps,
                n_min_trials=pruner.n_min_trials,
            )
        case "percentile":
            return PercentilePruner(
                pruner.percentile,
                n_startup_trials=pruner.n_startup_trials,
                n_warmup_steps=pruner.n_warmup_steps,
                interval_steps=pruner.interval_steps,
                n_min_trials=pruner.n_min_trials,
            )
        case "successive_halving":
            return SuccessiveHalvingPruner(
                min_resource=pruner.min_resource_for(max_epochs),
                reduction_factor=pruner.reduction_factor,
                min_early_stopping_rate=pruner.min_early_stopping_rate,
            )
        case "hyperband":
            return HyperbandPruner(
                min_resource=pruner.min_resource_for(max_epochs),
                max_resource=max_epochs,
                reduction_factor=pruner.reduction_factor,
            )
        case "patient":
            wrapped = None if pruner.wrapped is None else _pruner(pruner.wrapped, max_epochs=max_epochs)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                return PatientPruner(wrapped, patience=pruner.patience, min_delta=pruner.min_delta)
    raise AssertionError(f"unknown pruner {pruner.type!r}")  # pragma: no cover


def suggest_params(trial: BaseTrial, spec: StudySpec) -> dict[str, Any]:
    """Suggests every active parameter (``when`` met), parents first, with its ORIGINAL
    distribution; an enqueued trial (a retry) gets its fixed values back."""
    params: dict[str, Any] = {}
    for name in spec.param_order():
        param = spec.space[name]
        if not param.applies(params):
            continue
        if isinstance(param, CategoricalParam):
            params[name] = trial.suggest_categorical(name, param.choices)
        elif isinstance(param, FloatParam):
            params[name] = trial.suggest_float(
                name, param.low, param.high, step=param.step, log=param.scale == "log"
            )
        else:
            params[name] = trial.suggest_int(
                name, param.low, param.high, step=param.step, log=param.scale == "log"
            )
    return params
