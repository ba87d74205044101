"""Drawing a configuration inside a round's box, each parameter on its own scale.

Narrowing happens here, in *where* values are drawn, never in the distributions trials
record: a :class:`BoxSampler` draws inside the current round's box while trials are
suggested with the ORIGINAL distributions (``service.sampling.suggest_params``), so
Optuna's intersection search space, parameter importance and optuna-dashboard keep every
parameter. Draws depend only on ``(seed, trial number)`` (random) or ``(seed, index)``
(Sobol), never on which process samples.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial
from scipy.stats import qmc

from service.narrowing import Box, NumericRange, full_box
from service.scales import NumericParam, from_scale, scale_range, snap_nearest
from service.space import CategoricalParam, FloatParam

if TYPE_CHECKING:
    from optuna.study import Study

    from service.spec import StudySpec


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
