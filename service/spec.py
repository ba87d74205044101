"""The study spec: what to optimise, the search space, the sampler, pruner and rounds.

A spec arrives as JSON (``POST /api/v1/studies``) and is validated completely before a
study exists: every mistake is a pydantic error whose ``loc`` names the field, e.g.
``("space", "lr", "low")``, so the API answers 422 with a message a person can act on.

Its parts live in their own modules: the search space in ``service.space``, the
objective in ``service.objective``, samplers in ``service.samplers`` and pruners in
``service.pruners``. This module joins them, checks what spans several parts, and
re-exports the names other modules import from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optuna.distributions import BaseDistribution
from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from service import pruners, samplers
from service.limits import (
    MAX_CHOICES,
    MAX_GRID_POINTS,
    MAX_PARAMS,
    MAX_ROUND_TRIALS,
    MAX_ROUNDS,
    MAX_SEED,
    MAX_TOTAL_TRIALS,
)
from service.objective import Direction, Objective
from service.pruners import PERCENTILE_KEPT, PrunerSpec
from service.samplers import SamplerSpec
from service.space import (
    PARAM_TAGS,
    CategoricalParam,
    Choice,
    FloatParam,
    IntParam,
    NumericParam,
    ParamSpec,
    Scale,
)
from service.spec_base import SpecError, SpecModel, is_stored

__all__ = [
    "MAX_CHOICES",
    "MAX_GRID_POINTS",
    "MAX_PARAMS",
    "MAX_ROUNDS",
    "MAX_ROUND_TRIALS",
    "MAX_SEED",
    "MAX_TOTAL_TRIALS",
    "PERCENTILE_KEPT",
    "CategoricalParam",
    "Choice",
    "Direction",
    "FailurePolicy",
    "FloatParam",
    "IntParam",
    "NarrowingSpec",
    "NumericParam",
    "Objective",
    "ParamSpec",
    "PrunerSpec",
    "RoundSpec",
    "SamplerSpec",
    "Scale",
    "SpecError",
    "StudySpec",
    "spec_json_schema",
]


class RoundSpec(SpecModel):
    """One round's budget, in configurations (a retried configuration counts once)."""

    trials: int = Field(ge=1, le=MAX_ROUND_TRIALS)


class NarrowingSpec(SpecModel):
    """How round r+1's box is computed from the best completed trials so far.

    ``top = max(min_top, ceil(top_fraction * completed))`` trials are taken; each numeric
    parameter's box spans their values widened by ``margin`` (a fraction of the current
    box's width, on the parameter's own scale), clipped to the original bounds, and keeps
    at least ``min_width`` of the current box's width (widened around the incumbent), so a
    few noisy top trials of a small round cannot shrink it to a sliver.
    """

    top_fraction: float = Field(default=0.1, gt=0, le=1)
    min_top: int = Field(default=2, ge=1, le=MAX_TOTAL_TRIALS)
    margin: float = Field(default=0.1, ge=0, le=10)
    min_width: float = Field(default=0.5, ge=0, le=1)


class FailurePolicy(SpecModel):
    """When a study is hopeless and stops as ``failed``, rather than running its budget.

    A failure here is a trial the worker reported failed (an exception, a timeout, out of
    memory); a lease the reaper expired (a machine died) and trials interrupted or
    cancelled do not count. The study fails when its first ``first_trials`` results are
    all failures with the same reason, or when at least ``min_finished`` trials have
    finished and more than ``max_failure_rate`` of them failed. ``first_trials: 0`` and
    ``max_failure_rate: null`` turn the rules off. Independently, a round that ends with no
    completed trial in the whole study fails it: there is nothing to narrow around.
    """

    first_trials: int = Field(default=5, ge=0, le=MAX_TOTAL_TRIALS)
    max_failure_rate: float | None = Field(default=0.9, gt=0, lt=1)
    min_finished: int = Field(default=20, ge=1, le=MAX_TOTAL_TRIALS)


class StudySpec(SpecModel):
    """A whole study, as submitted. ``"trials": N`` is shorthand for ``"rounds": [{"trials": N}]``."""

    name: str = Field(min_length=1, max_length=200)
    objective: Objective
    space: dict[str, ParamSpec] = Field(min_length=1, max_length=MAX_PARAMS)
    sampler: SamplerSpec = Field(default_factory=samplers.DefaultSampler)
    pruner: PrunerSpec = Field(default_factory=pruners.DefaultPruner)
    rounds: list[RoundSpec] = Field(min_length=1, max_length=MAX_ROUNDS)
    narrowing: NarrowingSpec = Field(default_factory=NarrowingSpec)
    max_concurrent: int | None = Field(default=None, ge=1, le=MAX_ROUND_TRIALS)
    failure_policy: FailurePolicy = Field(default_factory=FailurePolicy)

    @model_validator(mode="wrap")
    @classmethod
    def _validate(
        cls, data: Any, handler: ModelWrapValidatorHandler[StudySpec], info: ValidationInfo
    ) -> StudySpec:
        shorthand = isinstance(data, dict) and "trials" in data
        if shorthand:
            assert isinstance(data, dict)
            if "rounds" in data:
                raise _errors(
                    [(("trials",), 'give either "trials" or "rounds", not both', "value_error")], data
                )
            data = {**data, "rounds": [{"trials": data["trials"]}]}
            del data["trials"]
        elif isinstance(data, dict) and "rounds" not in data:
            raise _errors(
                [
                    (
                        ("rounds",),
                        'a budget is required: "rounds": [{"trials": N}, ...] or "trials": N',
                        "value_error",
                    )
                ],
                data,
            )
        try:
            spec = handler(data)
            spec._check_across_fields(stored=is_stored(info))
        except ValidationError as exc:
            raise _relocated(exc, shorthand, data) from None
        except SpecError as exc:
            raise _errors([(exc.loc, exc.message, exc.kind)], data) from None
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
        if self.objective.built_in is not None:
            self._check_trainer_space()
            if not stored:
                try:
                    self.objective.check_metric()
                except SpecError as exc:
                    raise SpecError(("objective", *exc.loc), exc.message) from None
        self.sampler.check_space(self.space, stored=stored)
        if not stored:
            try:
                self.pruner.check_first_rung(self.objective.max_epochs)
            except SpecError as exc:
                raise SpecError(("pruner", *exc.loc), exc.message) from None

    def _check_trainer_space(self) -> None:
        for name, param in self.space.items():
            self.objective.check_knob(name, ("space", name))
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


def _errors(problems: list[tuple[tuple[str | int, ...], str, str]], data: Any) -> ValidationError:
    details: list[InitErrorDetails] = [
        {"type": PydanticCustomError(kind, message), "loc": loc, "input": data}
        for loc, message, kind in problems
    ]
    return ValidationError.from_exception_data("StudySpec", details)


def _relocated(exc: ValidationError, shorthand: bool, data: Any) -> ValidationError:
    """Drop the discriminator tag from locations (("space", "lr", "float", "low") names
    "low" of "lr" as ("space", "lr", "low")), and name "trials" when the shorthand was used."""
    details: list[InitErrorDetails] = []
    for error in exc.errors():
        loc = _untagged(tuple(error["loc"]))
        if shorthand and loc[:3] == ("rounds", 0, "trials"):
            loc = ("trials",) + loc[3:]
        message, kind = error["msg"], error["type"]
        if error["type"] == "value_error":
            cause = (error.get("ctx") or {}).get("error")
            if isinstance(cause, SpecError):
                loc, message, kind = loc + cause.loc, cause.message, cause.kind
            message = message.removeprefix("Value error, ")
        details.append({"type": PydanticCustomError(kind, message), "loc": loc, "input": error.get("input")})
    return ValidationError.from_exception_data("StudySpec", details)


def _untagged(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """``loc`` without the tags pydantic inserts after a discriminated union's field."""
    if len(loc) >= 3 and loc[0] == "space" and loc[2] in PARAM_TAGS:
        return loc[:2] + loc[3:]
    if len(loc) >= 2 and loc[0] == "sampler" and loc[1] in samplers.VARIANTS:
        return loc[:1] + loc[2:]
    if len(loc) >= 2 and loc[0] == "pruner" and loc[1] in pruners.VARIANTS:
        loc = loc[:1] + loc[2:]
        # a patient pruner's wrapped one: ("pruner", "wrapped", <tag>, ...)
        if len(loc) >= 3 and loc[1] == "wrapped" and loc[2] in pruners.VARIANTS:
            loc = loc[:2] + loc[3:]
    return loc


def spec_json_schema() -> dict[str, Any]:
    """The JSON schema of a study spec (for docs and clients)."""
    return StudySpec.model_json_schema()
