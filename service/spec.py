"""The study spec: what to optimise, the search space, the sampler, pruner and rounds.

A spec arrives as JSON (``POST /api/v1/studies``) and is validated completely before a
study exists: every mistake is a pydantic error whose ``loc`` names the field, e.g.
``("space", "lr", "low")``, so the API answers 422 with a message a person can act on.

Scales — where a numeric parameter is sampled uniformly:

- ``linear`` (default): uniform in ``[low, high]``.
- ``log``: uniform in ``[log low, log high]`` — the lecture's ``r = -4 * rand(); α = 10**r``
  for a learning rate in ``[1e-4, 1]``: every decade gets the same share of trials.
  ``"log": true`` is accepted as an alias. Needs ``low > 0``; ints may be log-scaled.
- ``reverse_log``: log scale on ``1 - x``, for momentum-like β in ``[0.9, 0.999]``: β = 0.9
  averages over ~10 steps and 0.999 over ~1000, so ``1 - β`` is what should be uniform in
  log space. Needs ``high < 1``.

Trials always keep the ORIGINAL distribution (:meth:`FloatParam.distribution` and
friends) so every trial of a study is valid against one search space; rounds narrow only
where hone's sampler draws (``service.narrowing``, ``service.sampling``). Optuna has no
reverse-log distribution, so such a parameter is recorded as a linear
``FloatDistribution(low, high)`` and sampled on the ``1 - x`` log scale by hone.

``when`` makes a parameter conditional: it exists only while a categorical parent takes
one of the listed values (momentum's β only for ``"momentum"``).
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from trainer.config import BUNDLED_DATASETS, KNOBS, TrainConfig

MAX_PARAMS = 64
MAX_CHOICES = 1000
MAX_ROUND_TRIALS = 100_000
MAX_TOTAL_TRIALS = 1_000_000
MAX_ROUNDS = 1000
MAX_GRID_POINTS = 1_000_000
MAX_SEED = 2**32 - 1


def _check_choice(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("NaN and infinite numbers are not allowed")
        return value
    raise ValueError("a choice must be a number, a string, a boolean or null")


Choice = Annotated[
    bool | int | float | str | None,
    PlainValidator(_check_choice, json_schema_input_type=bool | int | float | str | None),
]
Scale = Literal["linear", "log", "reverse_log"]
Direction = Literal["minimize", "maximize"]
SamplerType = Literal["random", "sobol", "tpe", "grid"]
PrunerType = Literal["none", "median", "percentile", "successive_halving", "hyperband", "patient"]

_PARAM_TAGS = {"float", "int", "categorical"}
_ENTRYPOINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_REGRESSION_DATASETS = {"diabetes"}
# Objective fields a built-in study sets on ``objective``, never in ``fixed`` or ``space``.
_OBJECTIVE_KNOBS = {"dataset": "objective.dataset", "max_epochs": "objective.max_epochs"}
_MAXIMIZED = ("accuracy", "acc", "auc", "f1", "r2", "precision", "recall", "score")
_MINIMIZED = ("loss", "error", "mse", "mae", "rmse", "perplexity")


class SpecError(ValueError):
    """A mistake found across fields, with the location of the field to blame."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def _strict() -> ConfigDict:
    return ConfigDict(extra="forbid", allow_inf_nan=False, frozen=False)


class _Param(BaseModel):
    model_config = _strict()

    when: dict[str, Annotated[list[Choice], Field(min_length=1)]] | None = Field(
        default=None,
        description="Only sample this parameter while each named categorical parent takes one of the listed values.",
    )

    def applies(self, params: Mapping[str, Any]) -> bool:
        """Whether the parameter exists given the values already drawn for its parents."""
        if not self.when:
            return True
        return all(parent in params and params[parent] in values for parent, values in self.when.items())


class FloatParam(_Param):
    """A real-valued parameter in ``[low, high]``, sampled on ``scale``."""

    type: Literal["float"]
    low: float
    high: float
    scale: Scale = "linear"
    step: float | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _log_alias(cls, data: Any) -> Any:
        return _apply_log_alias(data)

    @model_validator(mode="after")
    def _bounds(self) -> FloatParam:
        _check_bounds(self.low, self.high)
        if self.scale == "log" and self.low <= 0:
            raise SpecError(("low",), f"a log-scaled parameter needs low > 0, got {self.low}")
        if self.scale == "reverse_log" and self.high >= 1:
            raise SpecError(
                ("high",),
                f"a reverse_log parameter samples 1 - x on a log scale, so high must be < 1, got {self.high}",
            )
        if self.step is not None:
            if self.scale == "log":
                raise SpecError(("step",), "step cannot be combined with a log scale")
            count = (self.high - self.low) / self.step
            if not math.isfinite(count):  # a range past the float limit, or a vanishing step
                raise SpecError(
                    ("step",), f"step {self.step} is too small for the range {self.low} to {self.high}"
                )
            if count < 1 or abs(count - round(count)) > 1e-6 * max(1.0, count):
                raise SpecError(
                    ("step",), f"step {self.step} must divide high - low ({self.high - self.low})"
                )
        return self

    def distribution(self) -> FloatDistribution:
        """The Optuna distribution every trial records (original bounds)."""
        return FloatDistribution(self.low, self.high, log=self.scale == "log", step=self.step)

    def grid_values(self) -> list[float]:
        if self.step is None:
            raise ValueError("a float parameter needs a step to be put on a grid")
        count = round((self.high - self.low) / self.step)
        return [min(self.high, float(f"{self.low + i * self.step:.15g}")) for i in range(count + 1)]


class IntParam(_Param):
    """An integer parameter in ``[low, high]`` (both included), optionally log-scaled."""

    type: Literal["int"]
    low: int
    high: int
    scale: Literal["linear", "log"] = "linear"
    step: int = Field(default=1, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _log_alias(cls, data: Any) -> Any:
        return _apply_log_alias(data)

    @model_validator(mode="after")
    def _bounds(self) -> IntParam:
        _check_bounds(self.low, self.high)
        if self.scale == "log" and self.low < 1:
            raise SpecError(("low",), f"a log-scaled int needs low >= 1, got {self.low}")
        if self.step != 1:
            if self.scale == "log":
                raise SpecError(("step",), "step cannot be combined with a log scale")
            if (self.high - self.low) % self.step:
                raise SpecError(
                    ("step",), f"step {self.step} must divide high - low ({self.high - self.low})"
                )
        return self

    def distribution(self) -> IntDistribution:
        """The Optuna distribution every trial records (original bounds)."""
        return IntDistribution(self.low, self.high, log=self.scale == "log", step=self.step)

    def grid_values(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))


class CategoricalParam(_Param):
    """One of a list of choices (numbers, strings, booleans or null)."""

    type: Literal["categorical"]
    choices: list[Choice] = Field(min_length=1, max_length=MAX_CHOICES)

    @field_validator("choices")
    @classmethod
    def _distinct(cls, choices: list[Choice]) -> list[Choice]:
        seen: list[Choice] = []
        for choice in choices:
            # 1, 1.0 and True are one choice to Optuna, which stores the index of the first match.
            if any(choice == other for other in seen):
                raise ValueError(f"duplicate choice {choice!r}")
            seen.append(choice)
        return choices

    def distribution(self) -> CategoricalDistribution:
        """The Optuna distribution every trial records."""
        return CategoricalDistribution(self.choices)

    def grid_values(self) -> list[Choice]:
        return list(self.choices)


ParamSpec = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]
NumericParam = FloatParam | IntParam


def _apply_log_alias(data: Any) -> Any:
    if not isinstance(data, dict) or "log" not in data:
        return data
    data = dict(data)
    log = data.pop("log")
    if not isinstance(log, bool):
        raise SpecError(("log",), "log must be true or false (it is an alias of scale)")
    scale = data.get("scale")
    if log and scale not in (None, "log"):
        raise SpecError(("log",), f'"log": true contradicts "scale": {scale!r}')
    if not log and scale == "log":
        raise SpecError(("log",), '"log": false contradicts "scale": "log"')
    if log:
        data["scale"] = "log"
    return data


def _check_bounds(low: float, high: float) -> None:
    if low >= high:
        raise SpecError(("low",), f"low ({low}) must be less than high ({high})")


class Objective(BaseModel):
    """What a trial trains and which reported metric the study optimises.

    ``trainer="mlp"`` runs hone's built-in trainer: ``space`` and ``fixed`` keys must be
    its knobs (``trainer.config.KNOBS``). ``trainer="python"`` calls the user's
    ``entrypoint`` (``"package.module:function"``) with the parameters and a ``report``
    callable. ``metric`` and ``direction`` default by task: ``val_accuracy``/maximize for
    classification datasets, ``val_loss``/minimize otherwise.
    """

    model_config = _strict()

    trainer: Literal["mlp", "python"] = "mlp"
    entrypoint: str | None = Field(default=None, description="package.module:function (python trainer)")
    dataset: str | None = Field(default=None, min_length=1, max_length=4096)
    metric: str = Field(min_length=1, max_length=128)
    direction: Direction
    max_epochs: int = Field(default=30, ge=1, le=100_000, description="Epochs (pruning steps) per trial")
    fixed: dict[str, Any] = Field(default_factory=dict, description="Knob values shared by every trial")
    timeout_s: float | None = Field(
        default=None, gt=0, le=30 * 24 * 3600, description="Per-trial wall-clock limit"
    )

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("trainer", "mlp") == "mlp" and data.get("dataset") is None:
            data["dataset"] = "digits"
        if "metric" not in data:
            if _is_classification(data):
                data.setdefault("metric", "val_accuracy")
                data.setdefault("direction", "maximize")
            else:
                data.setdefault("metric", "val_loss")
                data.setdefault("direction", "minimize")
        elif "direction" not in data and isinstance(data["metric"], str):
            inferred = _infer_direction(data["metric"])
            if inferred is not None:
                data["direction"] = inferred
        return data

    @model_validator(mode="after")
    def _trainer_fields(self) -> Objective:
        if self.trainer == "python":
            if self.entrypoint is None:
                raise SpecError(
                    ("entrypoint",), 'the python trainer needs "entrypoint": "package.module:function"'
                )
            if not _ENTRYPOINT.match(self.entrypoint):
                raise SpecError(
                    ("entrypoint",), f"{self.entrypoint!r} is not of the form package.module:function"
                )
        elif self.entrypoint is not None:
            raise SpecError(("entrypoint",), 'entrypoint is only used with "trainer": "python"')
        _check_finite(self.fixed, ("fixed",))
        if self.trainer == "mlp":
            for key in self.fixed:
                _check_knob(key, ("fixed", key))
            self.train_config()
        return self

    def train_config(self, params: Mapping[str, Any] | None = None) -> TrainConfig:
        """The built-in trainer's config for ``params`` on top of ``fixed``; raises SpecError."""
        values = {**self.fixed, "dataset": self.dataset, "max_epochs": self.max_epochs, **(params or {})}
        try:
            return TrainConfig.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = first["loc"][0] if first["loc"] else None
            where: tuple[str | int, ...] = ("fixed",)
            if isinstance(field, str) and params and field in params:
                where = ("space", field)
            elif isinstance(field, str) and field in self.fixed:
                where = ("fixed", field)
            raise SpecError(where, f"invalid for the mlp trainer: {first['msg']}") from None


def _is_classification(data: Mapping[str, Any]) -> bool:
    if data.get("trainer", "mlp") != "mlp":
        return False
    dataset = data.get("dataset")
    fixed = data.get("fixed") if isinstance(data.get("fixed"), dict) else {}
    assert isinstance(fixed, dict)
    task = fixed.get("task", "auto")
    if task in ("classification", "regression"):
        return bool(task == "classification")
    if dataset == "synthetic":
        return bool(fixed.get("synthetic_classes", 2) != 0)
    return dataset in BUNDLED_DATASETS and dataset not in _REGRESSION_DATASETS


def _infer_direction(metric: str) -> Direction | None:
    name = metric.lower()
    if name.endswith(_MINIMIZED):
        return "minimize"
    if name.endswith(_MAXIMIZED):
        return "maximize"
    return None


def _check_knob(key: str, loc: tuple[str | int, ...]) -> None:
    if key in _OBJECTIVE_KNOBS:
        raise SpecError(loc, f"set {key} as {_OBJECTIVE_KNOBS[key]}, not here")
    if key not in KNOBS:
        raise SpecError(loc, f"{key!r} is not a knob of the mlp trainer (known: {', '.join(sorted(KNOBS))})")


def _check_finite(value: Any, loc: tuple[str | int, ...]) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(loc, "NaN and infinite numbers are not allowed")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, (*loc, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_finite(item, (*loc, index))


class SamplerSpec(BaseModel):
    """How trials are drawn inside the current round's box.

    ``random`` and ``sobol`` (quasi-random) sample the narrowed box; ``tpe`` and ``grid``
    ignore rounds' boxes and see the whole space (``grid`` is the baseline the lecture
    warns against, and needs a ``step`` on float parameters). When ``seed`` is omitted
    one is drawn and recorded, so a stored spec always replays the same draws.
    """

    model_config = _strict()

    type: SamplerType = "random"
    seed: int = Field(default_factory=lambda: secrets.randbelow(MAX_SEED), ge=0, le=MAX_SEED)
    n_startup_trials: int | None = Field(default=None, ge=0, le=MAX_TOTAL_TRIALS, description="tpe only")

    @model_validator(mode="after")
    def _options_match_type(self) -> SamplerSpec:
        if self.n_startup_trials is not None and self.type != "tpe":
            raise SpecError(("n_startup_trials",), "n_startup_trials is only used by the tpe sampler")
        return self


def _is_stored(info: ValidationInfo) -> bool:
    """Whether this is a study's spec read back from the database (``StudySpec.from_stored``)."""
    return bool(info.context and info.context.get("stored"))


# The percentile pruner's default keeps the top three quarters at each epoch: it cuts only
# trials that most finished trials beat, so a slow starter that ends best survives where
# the median pruner (the top half) cuts it (benchmarks/pruning.py's learning curves).
# Optuna has no default; 25 (its docs' example, hone's default before) cuts three quarters.
PERCENTILE_KEPT = 75.0

_PRUNER_OPTIONS: dict[str, set[str]] = {
    "none": set(),
    "median": {"n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"},
    "percentile": {"percentile", "n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"},
    "successive_halving": {"min_resource", "reduction_factor", "min_early_stopping_rate"},
    "hyperband": {"min_resource", "reduction_factor"},
    "patient": {"patience", "min_delta", "wrapped"},
}


class PrunerSpec(BaseModel):
    """When a running trial is stopped early, judged on its per-epoch reports.

    ``hyperband`` uses ``objective.max_epochs`` as its maximum resource. ``patient``
    stops a trial whose metric has not improved for ``patience`` epochs, and defers to
    ``wrapped`` (another pruner) otherwise. Options of another type are refused.
    """

    model_config = _strict()

    type: PrunerType = "median"
    n_startup_trials: int = Field(default=5, ge=0, le=MAX_TOTAL_TRIALS)
    n_warmup_steps: int = Field(default=0, ge=0, le=100_000)
    interval_steps: int = Field(default=1, ge=1, le=100_000)
    n_min_trials: int = Field(default=1, ge=1, le=MAX_TOTAL_TRIALS)
    percentile: float = Field(
        default=PERCENTILE_KEPT,
        gt=0,
        lt=100,
        description="A trial whose best value so far is worse than this percentile "
        "of the completed trials' values at the same epoch is pruned (the top `percentile` % are kept)",
    )
    min_resource: int | Literal["auto"] = Field(
        default="auto",
        description="Epochs before a successive_halving/hyperband trial is first judged; "
        "auto: max_epochs // reduction_factor**2 (at least 1)",
    )
    reduction_factor: int = Field(default=3, ge=2, le=100)
    min_early_stopping_rate: int = Field(default=0, ge=0, le=100)
    patience: int = Field(default=3, ge=0, le=100_000)
    min_delta: float = Field(default=0.0, ge=0)
    wrapped: PrunerSpec | None = None

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

    @model_validator(mode="after")
    def _options_match_type(self, info: ValidationInfo) -> PrunerSpec:
        if _is_stored(info):
            # A stored spec holds every option at the default of its day (a study created
            # before PERCENTILE_KEPT changed holds percentile 25): it was checked then.
            return self
        allowed = _PRUNER_OPTIONS[self.type]
        # Options left at their defaults are fine, so a stored (dumped) spec validates again.
        for name in sorted(self.model_fields_set - allowed - {"type"}):
            if getattr(self, name) == type(self).model_fields[name].default:
                continue
            users = [kind for kind, options in _PRUNER_OPTIONS.items() if name in options]
            raise SpecError(
                (name,), f"{name} is not an option of the {self.type} pruner (used by {', '.join(users)})"
            )
        if self.wrapped is not None and self.wrapped.type == "patient":
            raise SpecError(("wrapped", "type"), "a patient pruner cannot wrap another patient pruner")
        return self


class RoundSpec(BaseModel):
    """One round's budget, in configurations (a retried configuration counts once)."""

    model_config = _strict()

    trials: int = Field(ge=1, le=MAX_ROUND_TRIALS)


class NarrowingSpec(BaseModel):
    """How round r+1's box is computed from the best completed trials so far.

    ``top = max(min_top, ceil(top_fraction * completed))`` trials are taken; each numeric
    parameter's box spans their values widened by ``margin`` (a fraction of the current
    box's width, on the parameter's own scale), clipped to the original bounds, and keeps
    at least ``min_width`` of the current box's width (widened around the incumbent), so a
    few noisy top trials of a small round cannot shrink it to a sliver.
    """

    model_config = _strict()

    top_fraction: float = Field(default=0.1, gt=0, le=1)
    min_top: int = Field(default=2, ge=1, le=MAX_TOTAL_TRIALS)
    margin: float = Field(default=0.1, ge=0, le=10)
    min_width: float = Field(default=0.5, ge=0, le=1)


class StudySpec(BaseModel):
    """A whole study, as submitted. ``"trials": N`` is shorthand for ``"rounds": [{"trials": N}]``."""

    model_config = _strict()

    name: str = Field(min_length=1, max_length=200)
    objective: Objective
    space: dict[str, ParamSpec] = Field(min_length=1, max_length=MAX_PARAMS)
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    rounds: list[RoundSpec] = Field(min_length=1, max_length=MAX_ROUNDS)
    narrowing: NarrowingSpec = Field(default_factory=NarrowingSpec)
    max_concurrent: int | None = Field(default=None, ge=1, le=MAX_ROUND_TRIALS)

    @model_validator(mode="wrap")
    @classmethod
    def _validate(
        cls, data: Any, handler: ModelWrapValidatorHandler[StudySpec], info: ValidationInfo
    ) -> StudySpec:
        shorthand = isinstance(data, dict) and "trials" in data
        if shorthand:
            assert isinstance(data, dict)
            if "rounds" in data:
                raise _errors([(("trials",), 'give either "trials" or "rounds", not both')], data)
            data = {**data, "rounds": [{"trials": data["trials"]}]}
            del data["trials"]
        elif isinstance(data, dict) and "rounds" not in data:
            raise _errors(
                [(("rounds",), 'a budget is required: "rounds": [{"trials": N}, ...] or "trials": N')], data
            )
        try:
            spec = handler(data)
            spec._check_across_fields(stored=_is_stored(info))
        except ValidationError as exc:
            raise _relocated(exc, shorthand, data) from None
        except SpecError as exc:
            raise _errors([(exc.loc, exc.message)], data) from None
        return spec

    @field_validator("name")
    @classmethod
    def _printable(cls, name: str) -> str:
        if not name.isprintable() or not name.strip():
            raise ValueError("name must be printable characters, not only spaces")
        return name

    @field_validator("space")
    @classmethod
    def _param_names(cls, space: dict[str, Any]) -> dict[str, Any]:
        for name in space:
            if not name or len(name) > 128 or not name.isprintable():
                raise ValueError(f"parameter name {name!r} must be 1-128 printable characters")
        return space

    @classmethod
    def from_stored(cls, data: Any) -> StudySpec:
        """A study's spec as the database holds it. Checks added after the study was created
        that would refuse it (a pruner that never prunes) are skipped: its trials and
        results are already there and must stay readable."""
        return cls.model_validate(data, context={"stored": True})

    def _check_across_fields(self, *, stored: bool = False) -> None:
        for name, param in self.space.items():
            for parent, values in (param.when or {}).items():
                loc: tuple[str | int, ...] = ("space", name, "when", parent)
                if parent == name:
                    raise SpecError(loc, "a parameter cannot depend on itself")
                if parent not in self.space:
                    raise SpecError(loc, f"unknown parameter {parent!r}")
                owner = self.space[parent]
                if not isinstance(owner, CategoricalParam):
                    raise SpecError(loc, f"{parent!r} must be categorical to be a parent")
                for value in values:
                    if not any(value == choice for choice in owner.choices):
                        raise SpecError(loc, f"{value!r} is not a choice of {parent!r} ({owner.choices})")
        self.param_order()  # raises on a cycle
        if self.total_trials > MAX_TOTAL_TRIALS:
            raise SpecError(("rounds",), f"{self.total_trials} trials in total; at most {MAX_TOTAL_TRIALS}")
        for name in self.space:
            if name in self.objective.fixed:
                raise SpecError(("objective", "fixed", name), f"{name!r} is both fixed and searched in space")
        if self.objective.trainer == "mlp":
            self._check_mlp_space()
        if self.sampler.type == "grid":
            self._check_grid()
        if not stored:
            self._check_first_rung()

    def _check_first_rung(self) -> None:
        """A successive-halving or Hyperband pruner whose first rung comes after the last
        epoch would never prune: refused, rather than silently doing nothing."""
        pruner, max_epochs = self.pruner, self.objective.max_epochs
        if pruner.type not in ("successive_halving", "hyperband"):
            return
        resource = pruner.min_resource_for(max_epochs)
        rate = pruner.min_early_stopping_rate if pruner.type == "successive_halving" else 0
        first = resource * pruner.reduction_factor**rate
        if first > max_epochs:
            given = f"{resource}" if pruner.min_resource != "auto" else f"auto = {resource}"
            detail = "" if rate == 0 else f" × reduction_factor^min_early_stopping_rate = {first}"
            raise SpecError(
                ("pruner", "min_resource"),
                f"the first rung (min_resource {given}{detail}) comes after "
                f"objective.max_epochs ({max_epochs}): this pruner would never prune",
            )

    def _check_mlp_space(self) -> None:
        for name, param in self.space.items():
            _check_knob(name, ("space", name))
            values: list[Any] = (
                param.choices if isinstance(param, CategoricalParam) else [param.low, param.high]
            )
            for value in values:
                try:
                    self.objective.train_config({name: value})
                except SpecError as exc:
                    field = (
                        "choices"
                        if isinstance(param, CategoricalParam)
                        else ("low" if value == values[0] else "high")
                    )
                    raise SpecError(("space", name, field), f"{value!r}: {exc.message}") from None

    def _check_grid(self) -> None:
        points = 1
        for name, param in self.space.items():
            if isinstance(param, FloatParam) and param.step is None:
                raise SpecError(
                    ("space", name, "step"), "the grid sampler needs a step on every float parameter"
                )
            points *= len(param.grid_values())
            if points > MAX_GRID_POINTS:
                raise SpecError(("sampler", "type"), f"the grid has more than {MAX_GRID_POINTS} points")

    @property
    def total_trials(self) -> int:
        """Configurations over all rounds of the spec."""
        return sum(r.trials for r in self.rounds)

    def param_order(self) -> list[str]:
        """Parameter names, parents before children, otherwise in the order given."""
        order: list[str] = []
        state: dict[str, str] = {}

        def visit(name: str, path: tuple[str, ...]) -> None:
            if state.get(name) == "done":
                return
            if state.get(name) == "visiting":
                cycle = " -> ".join((*path, name))
                raise SpecError(("space", name, "when"), f"conditions form a cycle: {cycle}")
            state[name] = "visiting"
            for parent in self.space[name].when or {}:
                if parent in self.space:
                    visit(parent, (*path, name))
            state[name] = "done"
            order.append(name)

        for name in self.space:
            visit(name, ())
        return order

    def distributions(self) -> dict[str, BaseDistribution]:
        """Every parameter's ORIGINAL Optuna distribution, in :meth:`param_order`."""
        return {name: self.space[name].distribution() for name in self.param_order()}

    def active_params(self, params: Mapping[str, Any]) -> list[str]:
        """The parameters that exist for ``params`` (``when`` met), in :meth:`param_order`."""
        return [name for name in self.param_order() if self.space[name].applies(params)]


def _errors(problems: list[tuple[tuple[str | int, ...], str]], data: Any) -> ValidationError:
    details: list[InitErrorDetails] = [
        {"type": PydanticCustomError("value_error", message), "loc": loc, "input": data}
        for loc, message in problems
    ]
    return ValidationError.from_exception_data("StudySpec", details)


def _relocated(exc: ValidationError, shorthand: bool, data: Any) -> ValidationError:
    """Drop the discriminator tag from locations (("space", "lr", "float", "low") names
    "low" of "lr" as ("space", "lr", "low")), and name "trials" when the shorthand was used."""
    details: list[InitErrorDetails] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        if len(loc) >= 3 and loc[0] == "space" and loc[2] in _PARAM_TAGS:
            loc = loc[:2] + loc[3:]
        if shorthand and loc[:3] == ("rounds", 0, "trials"):
            loc = ("trials",) + loc[3:]
        message = error["msg"]
        if error["type"] == "value_error":
            cause = (error.get("ctx") or {}).get("error")
            if isinstance(cause, SpecError):
                loc, message = loc + cause.loc, cause.message
            message = message.removeprefix("Value error, ")
        details.append(
            {"type": PydanticCustomError(error["type"], message), "loc": loc, "input": error.get("input")}
        )
    return ValidationError.from_exception_data("StudySpec", details)


def spec_json_schema() -> dict[str, Any]:
    """The JSON schema of a study spec (for docs and clients)."""
    return StudySpec.model_json_schema()
