"""A study's search space: its float, int and categorical parameters.

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
``FloatDistribution(low, high)`` and sampled on the ``1 - x`` log scale by hone: by the
box sampler, and by TPE through a ``1 - x`` log distribution (``service.samplers``); the
grid sampler refuses it.

``when`` makes a parameter conditional: it exists only while a categorical parent takes
one of the listed values (momentum's β only for ``"momentum"``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from pydantic import Field, PlainValidator, field_validator, model_validator

from service.limits import MAX_CHOICES
from service.spec_base import SpecError, SpecModel


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
PARAM_TAGS = {"float", "int", "categorical"}


class _Param(SpecModel):
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
