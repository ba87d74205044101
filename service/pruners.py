"""Pruners: when a running trial is stopped early, judged on its per-epoch reports.

Each pruner is one variant class below, a pydantic model that holds its own options
with their defaults and builds its Optuna pruner. ``PrunerSpec`` is their union,
discriminated by ``type``; the type names, the options table behind the "is not an
option of the ... pruner" messages and the JSON schema all come from ``VARIANTS``.

Adding a pruner takes one class (a ``type`` Literal with its name as default, its
options as fields, ``build`` and, where it provably answers no, ``may_prune``) appended
to the ``PrunerVariant`` union, and its test (``tests/unit/service/test_pruners.py`` builds every variant).

A stored spec (``StudySpec.from_stored``) may hold options of other pruners: specs
dumped before pruners were variants hold every option at its default. Those are dropped.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import optuna
from optuna import pruners
from optuna.exceptions import ExperimentalWarning
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from service.limits import MAX_TOTAL_TRIALS
from service.spec_base import SpecError, SpecModel, Variants, is_stored

# The percentile pruner's default keeps the top three quarters at each epoch: it cuts only
# trials that most finished trials beat, so a slow starter that ends best survives where
# the median pruner (the top half) cuts it (benchmarks/pruning.py's learning curves).
# Optuna has no default; 25 (its docs' example, hone's default before) cuts three quarters.
PERCENTILE_KEPT = 75.0


class Pruning(SpecModel, ABC):
    """What every pruner variant offers.

    Attributes:
        reads_own_values_only: the pruner reads only the running trial's own
            intermediate values, never other trials' (so a report need not load them).
        ever_prunes: False for a pruner that never prunes (a report reads nothing more).
    """

    type: str
    reads_own_values_only: ClassVar[bool] = False
    ever_prunes: ClassVar[bool] = True

    @abstractmethod
    def build(self, max_epochs: int) -> pruners.BasePruner:
        """The Optuna pruner; ``max_epochs`` is the objective's, the maximum resource."""

    def may_prune(self, *, completed: int, step: int) -> bool:
        """False where the pruner provably answers no at ``step`` with ``completed`` trials
        finished (saving its reads of the study); True where it may prune."""
        return True

    def check_first_rung(self, max_epochs: int) -> None:
        """Raises SpecError if the pruner could never prune a run of ``max_epochs``."""
        return

    def explain(self, study: optuna.Study, trial: FrozenTrial, *, metric: str, max_epochs: int) -> str:
        """Why the pruner pruned ``trial`` (read after it judged) at its last step, from
        what it read: the threshold or the rung and its cut-off."""
        step = trial.last_step
        value = trial.intermediate_values.get(step, math.nan) if step is not None else math.nan
        return f"{metric} {value:.4g} at epoch {step}"


def _worse(direction: StudyDirection) -> str:
    return "above" if direction == StudyDirection.MINIMIZE else "below"


class NoPruning(Pruning):
    """Never prunes: every trial runs to its end."""

    type: Literal["none"] = "none"
    ever_prunes: ClassVar[bool] = False

    def build(self, max_epochs: int) -> pruners.BasePruner:
        return pruners.NopPruner()

    def may_prune(self, *, completed: int, step: int) -> bool:
        return False


class _AgainstCompletedTrials(Pruning):
    """Compares a trial's best value so far with the completed trials' at the same epoch."""

    reads_own_values_only = True

    n_startup_trials: int = Field(default=5, ge=0, le=MAX_TOTAL_TRIALS)
    n_warmup_steps: int = Field(default=0, ge=0, le=100_000)
    interval_steps: int = Field(default=1, ge=1, le=100_000)
    n_min_trials: int = Field(default=1, ge=1, le=MAX_TOTAL_TRIALS)

    def may_prune(self, *, completed: int, step: int) -> bool:
        # Optuna's percentile pruner needs n_startup_trials completed trials, and at least one.
        return step >= self.n_warmup_steps and completed >= max(self.n_startup_trials, 1)

    def _kept(self) -> float:
        """The share (in %) of completed trials' values at a step that a trial must match."""
        return 50.0

    def _threshold_name(self) -> str:
        return f"the {self._kept():g} % cut-off"

    def explain(self, study: optuna.Study, trial: FrozenTrial, *, metric: str, max_epochs: int) -> str:
        # As Optuna's percentile pruner (the median is its 50th percentile) computes it.
        step = trial.last_step
        values = np.asarray(list(trial.intermediate_values.values()), dtype=float)
        if step is None or values.size == 0 or np.isnan(values).all():
            return f"{metric} is NaN at epoch {step}"
        direction = study.direction
        best = float(np.nanmin(values) if direction == StudyDirection.MINIMIZE else np.nanmax(values))
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        at_step = [t.intermediate_values[step] for t in completed if step in t.intermediate_values]
        kept = self._kept() if direction == StudyDirection.MINIMIZE else 100.0 - self._kept()
        threshold = float(np.nanpercentile(np.asarray(at_step, dtype=float), kept)) if at_step else math.nan
        return (
            f"{metric} {best:.4g} (best so far) {_worse(direction)} {self._threshold_name()} "
            f"{threshold:.4g} of {len(at_step)} completed trials at epoch {step}"
        )


class MedianPruning(_AgainstCompletedTrials):
    """Prunes a trial whose best value so far is worse than the completed trials' median."""

    type: Literal["median"] = "median"

    def _threshold_name(self) -> str:
        return "the median"

    def build(self, max_epochs: int) -> pruners.BasePruner:
        return pruners.MedianPruner(
            n_startup_trials=self.n_startup_trials,
            n_warmup_steps=self.n_warmup_steps,
            interval_steps=self.interval_steps,
            n_min_trials=self.n_min_trials,
        )


class PercentilePruning(_AgainstCompletedTrials):
    """Prunes a trial outside the top ``percentile`` % of the completed trials."""

    type: Literal["percentile"] = "percentile"
    percentile: float = Field(
        default=PERCENTILE_KEPT,
        gt=0,
        lt=100,
        description="A trial whose best value so far is worse than this percentile "
        "of the completed trials' values at the same epoch is pruned (the top `percentile` % are kept)",
    )

    def _kept(self) -> float:
        return self.percentile

    def _threshold_name(self) -> str:
        return f"the cut-off of the top {self.percentile:g} %"

    def build(self, max_epochs: int) -> pruners.BasePruner:
        return pruners.PercentilePruner(
            self.percentile,
            n_startup_trials=self.n_startup_trials,
            n_warmup_steps=self.n_warmup_steps,
            interval_steps=self.interval_steps,
            n_min_trials=self.n_min_trials,
        )


class _Rungs(Pruning):
    """Judges trials at rungs: after ``min_resource`` epochs, then every ``reduction_factor`` times more."""

    min_resource: int | Literal["auto"] = Field(
        default="auto",
        description="Epochs before a successive_halving/hyperband trial is first judged; "
        "auto: max_epochs // reduction_factor**2 (at least 1)",
    )
    reduction_factor: int = Field(default=3, ge=2, le=100)

    @field_validator("min_resource")
    @classmethod
    def _positive_resource(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("min_resource must be >= 1 or 'auto'")
        return value

    def min_resource_for(self, max_epochs: int) -> int:
        """Epochs before a successive-halving or Hyperband trial is first judged.

        ``auto`` is ``max_epochs // reduction_factor**2`` (at least 1): three rungs, the first
        after a ninth of training with the default factor. Optuna's own ``auto`` (1 % of the
        first finished trial's steps) judges every trial of a short run after one epoch, when
        learning curves still cross: a slow starter that ends best is cut there. Judging later
        cuts fewer of them; where curves cross later still (``benchmarks/pruning.py``'s
        learning-curve task), no rung early enough to save compute keeps the best.
        """
        if self.min_resource != "auto":
            return self.min_resource
        return max(1, max_epochs // self.reduction_factor**2)

    def _first_rung_rate(self) -> int:
        return 0

    def explain(self, study: optuna.Study, trial: FrozenTrial, *, metric: str, max_epochs: int) -> str:
        # Imported here: optuna_tables reads stored specs (service.caches), which import this module.
        from service import optuna_tables

        judged = optuna_tables.rung_judgement(study, trial)
        if judged is None:
            return f"{metric} is NaN at epoch {trial.last_step}"
        rate = self._first_rung_rate() + judged.bracket
        epoch = self.min_resource_for(max_epochs) * self.reduction_factor ** (rate + judged.rung)
        # Optuna promotes the top 1/reduction_factor, and the best alone while fewer compete.
        ranked = sorted(judged.competing, reverse=study.direction == StudyDirection.MAXIMIZE)
        promoted = max(len(ranked) // self.reduction_factor, 1)
        bracket = f", bracket {judged.bracket}" if isinstance(self, HyperbandPruning) else ""
        return (
            f"rung {judged.rung + 1} (epoch {epoch}{bracket}): {metric} {judged.value:.4g} not in the "
            f"top 1/{self.reduction_factor} of {len(ranked)} trials there (the best {promoted}: "
            f"cut-off {ranked[promoted - 1]:.4g})"
        )

    def check_first_rung(self, max_epochs: int) -> None:
        """A first rung after the last epoch would never prune: refused, rather than
        silently doing nothing."""
        resource = self.min_resource_for(max_epochs)
        rate = self._first_rung_rate()
        first = resource * self.reduction_factor**rate
        if first > max_epochs:
            given = f"{resource}" if self.min_resource != "auto" else f"auto = {resource}"
            detail = "" if rate == 0 else f" × reduction_factor^min_early_stopping_rate = {first}"
            raise SpecError(
                ("min_resource",),
                f"the first rung (min_resource {given}{detail}) comes after "
                f"objective.max_epochs ({max_epochs}): this pruner would never prune",
            )


class SuccessiveHalvingPruning(_Rungs):
    """Asynchronous successive halving: at each rung, keeps the top 1/``reduction_factor``."""

    type: Literal["successive_halving"] = "successive_halving"
    min_early_stopping_rate: int = Field(default=0, ge=0, le=100)

    def _first_rung_rate(self) -> int:
        return self.min_early_stopping_rate

    def build(self, max_epochs: int) -> pruners.BasePruner:
        return pruners.SuccessiveHalvingPruner(
            min_resource=self.min_resource_for(max_epochs),
            reduction_factor=self.reduction_factor,
            min_early_stopping_rate=self.min_early_stopping_rate,
        )


class HyperbandPruning(_Rungs):
    """Hyperband: successive halving in several brackets; ``objective.max_epochs`` is its maximum resource."""

    type: Literal["hyperband"] = "hyperband"

    def build(self, max_epochs: int) -> pruners.BasePruner:
        return pruners.HyperbandPruner(
            min_resource=self.min_resource_for(max_epochs),
            max_resource=max_epochs,
            reduction_factor=self.reduction_factor,
        )


class PatientPruning(Pruning):
    """Stops a trial whose metric has not improved for ``patience`` epochs, and defers to
    ``wrapped`` (another pruner, not a patient one) otherwise."""

    type: Literal["patient"] = "patient"
    patience: int = Field(default=3, ge=0, le=100_000)
    min_delta: float = Field(default=0.0, ge=0)
    wrapped: PrunerSpec | None = None

    @model_validator(mode="after")
    def _not_wrapping_itself(self, info: ValidationInfo) -> PatientPruning:
        if not is_stored(info) and self.wrapped is not None and self.wrapped.type == "patient":
            raise SpecError(("wrapped", "type"), "a patient pruner cannot wrap another patient pruner")
        return self

    def explain(self, study: optuna.Study, trial: FrozenTrial, *, metric: str, max_epochs: int) -> str:
        # As Optuna's patient pruner splits a trial's steps: the last patience + 1 against the rest.
        steps = sorted(trial.intermediate_values)
        before = [trial.intermediate_values[s] for s in steps[: -self.patience - 1]]
        after = [trial.intermediate_values[s] for s in steps[-self.patience - 1 :]]
        pick = np.nanmin if study.direction == StudyDirection.MINIMIZE else np.nanmax
        since = steps[-self.patience - 1] if len(steps) > self.patience else None
        delta = f", worse by more than min_delta {self.min_delta:g}" if self.min_delta else ""
        reason = (
            f"{metric} has not improved on {float(pick(before)):.4g} for {self.patience + 1} epochs "
            f"(patience {self.patience}; best {float(pick(after)):.4g} since epoch {since}{delta})"
            if before and after
            else f"{metric} stalled at epoch {trial.last_step}"
        )
        if self.wrapped is None:
            return reason
        return f"{reason}, and {self.wrapped.type}: " + self.wrapped.explain(
            study, trial, metric=metric, max_epochs=max_epochs
        )

    def build(self, max_epochs: int) -> pruners.BasePruner:
        wrapped = None if self.wrapped is None else self.wrapped.build(max_epochs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return pruners.PatientPruner(wrapped, patience=self.patience, min_delta=self.min_delta)


# Every pruner, in the order messages list them: the one place a new pruner is added.
PrunerVariant = (
    NoPruning
    | MedianPruning
    | PercentilePruning
    | SuccessiveHalvingPruning
    | HyperbandPruning
    | PatientPruning
)
DefaultPruner = MedianPruning
FAMILY: Variants[Pruning] = Variants(PrunerVariant, default=DefaultPruner, name="PrunerSpec")
VARIANTS = FAMILY.by_type
options = FAMILY.options


def _pruner_input(data: Any, info: ValidationInfo) -> Any:
    """Fills the default ``type`` and deals with options of other pruners: dropped from a
    stored spec, dropped when left at their defaults (so an old dump validates again),
    refused otherwise."""
    if isinstance(data, Pruning):
        return data
    data, kind, foreign = FAMILY.typed(data)
    for name, users in foreign:
        if is_stored(info) or _is_default(VARIANTS[users[0]], name, data[name], info):
            del data[name]
            continue
        raise SpecError((name,), f"{name} is not an option of the {kind} pruner (used by {', '.join(users)})")
    return data


def _is_default(variant: type[SpecModel], name: str, value: Any, info: ValidationInfo) -> bool:
    try:
        parsed = variant.model_validate({name: value}, context=info.context)
    except ValidationError as error:
        first = error.errors()[0]
        raise SpecError((name,), first["msg"], kind=first["type"]) from None
    return bool(getattr(parsed, name) == variant.model_fields[name].default)


PrunerSpec = Annotated[
    PrunerVariant,
    Field(discriminator="type"),
    BeforeValidator(_pruner_input),
]

PatientPruning.model_rebuild()
