"""Samplers: how a study's trials are drawn, one variant class per sampler.

``random`` and ``sobol`` (quasi-random) draw inside the current round's box with a
:class:`~service.box_sampler.BoxSampler`, from the seed and the trial's number or
position alone, so a draw needs no study history. ``tpe`` models the whole space from
all completed trials (it narrows by itself) and ``grid`` walks the whole space's grid
(the baseline the lecture warns against); for both, rounds only split the budget.

Each variant holds its options, checks the space it is given and builds its Optuna
sampler; ``SamplerSpec`` is their union, discriminated by ``type`` (default ``random``).
Adding a sampler is one class added to the ``SamplerVariant`` union, and its test.
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.samplers import BaseSampler, GridSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState
from pydantic import BeforeValidator, Field, ValidationError

from service.box_sampler import BoxSampler
from service.limits import MAX_GRID_POINTS, MAX_SEED, MAX_TOTAL_TRIALS
from service.scales import snap_nearest
from service.space import FloatParam, ParamSpec
from service.spec_base import SpecError, SpecModel, Variants

if TYPE_CHECKING:
    from optuna.study import Study

    from service.narrowing import Box
    from service.spec import StudySpec


class Sampling(SpecModel, ABC):
    """What every sampler variant offers. When ``seed`` is omitted one is drawn and
    recorded, so a stored spec always replays the same draws.

    Attributes:
        draws_without_history: a draw depends only on the seed, the box and the trial's
            number or position, never on other trials (so it needs no study loaded).
    """

    type: str
    seed: int = Field(default_factory=lambda: secrets.randbelow(MAX_SEED), ge=0, le=MAX_SEED)
    draws_without_history: ClassVar[bool] = False

    @abstractmethod
    def build(self, spec: StudySpec, *, box: Box, index: int) -> BaseSampler:
        """The sampler for the configuration at position ``index`` of the round sampled in ``box``."""

    def history_window(self) -> int | None:
        """For a sampler that reads the study's history: how many of the most recent
        finished trials (besides the best) it needs to see; None: every trial."""
        return None

    def check_space(self, space: Mapping[str, ParamSpec], *, stored: bool = False) -> None:
        """Raises SpecError if the sampler cannot search ``space`` (``stored``: a study's
        stored spec, whose checks added since it was created are skipped)."""
        return


class RandomSampling(Sampling):
    """Uniform draws inside the round's box, each parameter on its own scale."""

    type: Literal["random"] = "random"
    draws_without_history = True

    def build(self, spec: StudySpec, *, box: Box, index: int) -> BaseSampler:
        return BoxSampler(spec, box=box, kind="random", seed=self.seed, index=index)


class SobolSampling(Sampling):
    """A scrambled Sobol sequence inside the round's box: quasi-random, evenly spread."""

    type: Literal["sobol"] = "sobol"
    draws_without_history = True

    def build(self, spec: StudySpec, *, box: Box, index: int) -> BaseSampler:
        return BoxSampler(spec, box=box, kind="sobol", seed=self.seed, index=index)


# TPE models the best trials and this many of the most recent finished ones (at least
# n_startup_trials): a grant's cost does not grow with the study (service.optuna_tables.SamplerStorage).
TPE_HISTORY = 1000


class TpeSampling(Sampling):
    """Optuna's TPE over the whole space, after ``n_startup_trials`` random ones (10 if omitted)."""

    type: Literal["tpe"] = "tpe"
    n_startup_trials: int | None = Field(default=None, ge=0, le=MAX_TOTAL_TRIALS, description="tpe only")

    def _startup(self) -> int:
        return 10 if self.n_startup_trials is None else self.n_startup_trials

    def history_window(self) -> int | None:
        return max(TPE_HISTORY, self._startup())

    def build(self, spec: StudySpec, *, box: Box, index: int) -> BaseSampler:
        reverse_log = {
            name: param
            for name, param in spec.space.items()
            if isinstance(param, FloatParam) and param.scale == "reverse_log"
        }
        # Every trial suggests each unconditional parameter with its original distribution,
        # so they are the intersection search space Optuna would compute from all trials.
        relative_space = {
            name: distribution
            for name, distribution in sorted(spec.distributions().items())
            if spec.space[name].when is None and not distribution.single()
        }
        return _ScaledTPESampler(
            reverse_log=reverse_log,
            relative_space=relative_space,
            seed=(self.seed + index) % (MAX_SEED + 1),
            n_startup_trials=self._startup(),
        )


class _OneMinusLog(FloatDistribution):
    """``1 - x`` on a log scale, for TPE to model a reverse_log parameter ``x``: past
    trials' values of ``x`` reach TPE through :meth:`to_internal_repr` as ``1 - x``."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__(low, high, log=True)

    def to_internal_repr(self, param_value_in_external_repr: float) -> float:
        return 1.0 - float(param_value_in_external_repr)


class _ScaledTPESampler(TPESampler):
    """Optuna's TPE, sampling each reverse_log parameter on its own scale.

    Optuna has no reverse-log distribution: a trial records β with its original, linear
    distribution (so every trial of the study stays valid against one search space and
    the dashboard shows β), and TPE given that distribution would draw β linearly, 9 % of
    draws in [0.99, 0.999] for β in [0.9, 0.999] instead of half. So TPE (and its random
    start-up draws) is asked for ``1 - β`` on a log scale, modelled on the past trials' β
    mapped the same way, and the answer is turned back into β (snapped onto a ``step``).
    With constant liar (Optuna's default) TPE also keeps a running trial's relative draw
    in a system attribute, as ``1 - β``; it only stands in until the trial's parameters
    are written, which hone does in the same grant.
    Log-scaled and stepped parameters need nothing: Optuna's distributions carry both.
    """

    def __init__(
        self,
        *,
        reverse_log: Mapping[str, FloatParam],
        relative_space: Mapping[str, BaseDistribution],
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self._reverse_log = dict(reverse_log)
        self._relative_space = dict(relative_space)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        # Optuna intersects the distributions of every finished trial, each grant (a new
        # sampler each time): 100,000 trials' work for an answer the spec already gives.
        # hone's studies have one objective, for which Optuna 5's TPE is multivariate.
        return dict(self._relative_space)

    def _flipped(self, name: str, distribution: BaseDistribution) -> BaseDistribution:
        if name not in self._reverse_log or not isinstance(distribution, FloatDistribution):
            return distribution
        return _OneMinusLog(1.0 - distribution.high, 1.0 - distribution.low)

    def _back(self, name: str, distribution: BaseDistribution, value: Any) -> Any:
        param = self._reverse_log.get(name)
        if param is None or not isinstance(distribution, FloatDistribution):
            return value
        beta = 1.0 - float(value)
        if param.step is not None:
            beta = snap_nearest(param, beta)
        return min(max(beta, distribution.low), distribution.high)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        # TPE's model phase: Optuna 5's TPE is multivariate, drawing every parameter of the
        # search space at once here (the space itself stays the recorded one, which the
        # trial checks its suggestions against).
        flipped = {name: self._flipped(name, d) for name, d in search_space.items()}
        drawn = super().sample_relative(study, trial, flipped)
        return {name: self._back(name, search_space[name], value) for name, value in drawn.items()}

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        # Start-up draws, and parameters outside the relative search space (conditional ones).
        flipped = self._flipped(param_name, param_distribution)
        value = super().sample_independent(study, trial, param_name, flipped)
        return self._back(param_name, param_distribution, value)


class GridSampling(Sampling):
    """Every point of the whole space's grid; float parameters need a ``step``."""

    type: Literal["grid"] = "grid"

    def check_space(self, space: Mapping[str, ParamSpec], *, stored: bool = False) -> None:
        points = 1
        for name, param in space.items():
            if isinstance(param, FloatParam) and param.step is None:
                raise SpecError(
                    ("space", name, "step"), "the grid sampler needs a step on every float parameter"
                )
            if isinstance(param, FloatParam) and param.scale == "reverse_log" and not stored:
                # A step spaces the grid evenly in β, not in 1 - β: a silently linear grid.
                raise SpecError(
                    ("space", name, "scale"),
                    "the grid sampler cannot space a reverse_log parameter on its scale (a step is "
                    "linear in the value); list the values as a categorical, e.g. [0.9, 0.99, 0.999]",
                )
            points *= len(param.grid_values())
            if points > MAX_GRID_POINTS:
                raise SpecError(("sampler", "type"), f"the grid has more than {MAX_GRID_POINTS} points")

    def build(self, spec: StudySpec, *, box: Box, index: int) -> BaseSampler:
        grid = {name: param.grid_values() for name, param in spec.space.items()}
        # Always the study's seed: grid ids index a seeded shuffle of the grid, so another
        # seed would make the visited ids of earlier trials point at other grid points.
        return _StudyGridSampler(grid, seed=self.seed)


class _StudyGridSampler(GridSampler):
    """Optuna's grid sampler, minus stopping the study when the grid is exhausted:
    ``study.stop()`` only works inside ``optimize``, and hone's round budgets decide."""

    def after_trial(
        self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        return None


# Every sampler, in the order messages list them: the one place a new sampler is added.
SamplerVariant = RandomSampling | SobolSampling | TpeSampling | GridSampling
DefaultSampler = RandomSampling
FAMILY: Variants[Sampling] = Variants(SamplerVariant, default=DefaultSampler, name="SamplerSpec")
VARIANTS = FAMILY.by_type
options = FAMILY.options


def _sampler_input(data: Any) -> Any:
    """Fills the default ``type``; an option of another sampler is dropped while null
    (stored specs hold ``"n_startup_trials": null``) and refused otherwise."""
    if isinstance(data, Sampling):
        return data
    data, _, foreign = FAMILY.typed(data)
    for name, users in foreign:
        if data[name] is not None:
            try:
                VARIANTS[users[0]].model_validate({name: data[name]})
            except ValidationError as error:
                first = error.errors()[0]
                raise SpecError((name,), first["msg"], kind=first["type"]) from None
            raise SpecError((name,), f"{name} is only used by the {' and '.join(users)} sampler")
        del data[name]
    return data


SamplerSpec = Annotated[
    SamplerVariant,
    Field(discriminator="type"),
    BeforeValidator(_sampler_input),
]
