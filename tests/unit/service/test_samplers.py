"""Sampler variants: each builds its Optuna sampler and says whether it needs history."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.samplers import BaseSampler
from pydantic import ValidationError

from service.narrowing import full_box
from service.samplers import VARIANTS
from service.sampling import suggest_params
from service.spec import StudySpec


@pytest.mark.parametrize("kind", list(VARIANTS))
def test_every_sampler_builds_its_optuna_sampler(example: dict[str, Any], kind: str) -> None:
    example["space"] = {"n_layers": {"type": "int", "low": 1, "high": 3}}
    spec = StudySpec.model_validate({**example, "sampler": {"type": kind, "seed": 1}})
    assert isinstance(spec.sampler.build(spec, box=full_box(spec), index=0), BaseSampler)


def test_only_random_and_sobol_draw_without_history() -> None:
    assert {kind for kind, variant in VARIANTS.items() if variant.draws_without_history} == {
        "random",
        "sobol",
    }


def test_a_sampler_stored_with_a_null_tpe_option_reads_back(example: dict[str, Any]) -> None:
    example["sampler"] = {"type": "sobol", "seed": 3, "n_startup_trials": None}
    spec = StudySpec.from_stored(example)
    assert spec.sampler.model_dump() == {"type": "sobol", "seed": 3}


PYTHON_OBJECTIVE = {
    "trainer": "python",
    "entrypoint": "benchmarks.objectives:noop",
    "metric": "value",
    "direction": "minimize",
}


def _tpe_draws(example: dict[str, Any], *, startup: int, seed: int, n: int) -> list[dict[str, Any]]:
    """``n`` draws of the built TPE sampler, on an objective that only ``x`` decides: what
    TPE learns of the other parameters is nothing, so their draws keep the shape of the
    start-up draws, each parameter on its own scale."""
    example["space"] = {
        "beta": {"type": "float", "low": 0.9, "high": 0.999, "scale": "reverse_log"},
        "units": {"type": "int", "low": 1, "high": 1024, "scale": "log"},
        "keep": {"type": "float", "low": 0.5, "high": 1.0, "step": 0.05},
        "momentum": {"type": "float", "low": 0.5, "high": 0.95, "step": 0.05, "scale": "reverse_log"},
        "x": {"type": "float", "low": 0.0, "high": 1.0},
    }
    example["objective"] = PYTHON_OBJECTIVE
    example["sampler"] = {"type": "tpe", "seed": seed, "n_startup_trials": startup}
    spec = StudySpec.model_validate(example)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=spec.sampler.build(spec, box=full_box(spec), index=0))
    draws = []
    for _ in range(n):
        trial = study.ask()
        draws.append(suggest_params(trial, spec))
        assert trial.distributions["beta"] == FloatDistribution(0.9, 0.999)  # β, as the dashboard shows it
        study.tell(trial, (draws[-1]["x"] - 0.3) ** 2)
    return draws


def _share(draws: list[dict[str, Any]], name: str, at: Callable[[Any], bool]) -> float:
    return sum(at(draw[name]) for draw in draws) / len(draws)


def _on_grid(value: float, low: float, step: float) -> bool:
    return round((value - low) / step, 9).is_integer()


def test_tpe_start_up_draws_follow_each_parameters_scale(example: dict[str, Any]) -> None:
    draws = _tpe_draws(example, startup=200, seed=1, n=200)
    # Half of [0.9, 0.999] on the 1 - β log scale is [0.99, 0.999] (linear: 9 %).
    assert 0.4 <= _share(draws, "beta", lambda beta: beta >= 0.99) <= 0.6
    assert 0.4 <= _share(draws, "units", lambda units: units <= 32) <= 0.6  # log: 1..32 is half
    assert all(0.5 <= d["keep"] <= 1.0 and _on_grid(d["keep"], 0.5, 0.05) for d in draws)
    assert all(0.5 <= d["momentum"] <= 0.95 and _on_grid(d["momentum"], 0.5, 0.05) for d in draws)
    # Stepped: 1 - m from 0.05 to 0.5 on a log scale, snapped to 0.05 (linear: 28 %).
    assert 0.4 <= _share(draws, "momentum", lambda m: m >= 0.85) <= 0.7


def test_tpe_model_draws_keep_each_parameters_scale(example: dict[str, Any]) -> None:
    # Optuna 5's TPE draws all parameters together after its start-up trials, so one
    # study's draws of a parameter that does not matter follow a few early trials: pooled
    # over seeds, they follow the start-up draws' shape (linear: 3 % of β draws >= 0.99).
    draws = [draw for seed in range(4) for draw in _tpe_draws(example, startup=10, seed=seed, n=70)[10:]]
    assert 0.3 <= _share(draws, "beta", lambda beta: beta >= 0.99) <= 0.9
    assert _share(draws, "units", lambda units: units <= 32) >= 0.2  # linear: 3 %
    assert all(_on_grid(d["keep"], 0.5, 0.05) and _on_grid(d["momentum"], 0.5, 0.05) for d in draws)
    assert _share(draws, "x", lambda x: abs(x - 0.3) < 0.05) >= 0.3  # and it learns what matters


def test_tpe_learns_on_the_reverse_log_scale(example: dict[str, Any]) -> None:
    example["space"] = {"beta": {"type": "float", "low": 0.9, "high": 0.999, "scale": "reverse_log"}}
    example["objective"] = PYTHON_OBJECTIVE
    example["sampler"] = {"type": "tpe", "seed": 3, "n_startup_trials": 10}
    spec = StudySpec.model_validate(example)
    study = optuna.create_study(sampler=spec.sampler.build(spec, box=full_box(spec), index=0))
    # The best β is 0.997: 1 - β = 0.003, two thirds along the log scale.
    study.optimize(lambda trial: abs(math.log10(1 - suggest_params(trial, spec)["beta"]) + 2.5), n_trials=60)
    assert abs(study.best_params["beta"] - 0.9968) < 0.001


def test_the_grid_sampler_refuses_a_reverse_log_parameter_but_reads_a_stored_one(
    example: dict[str, Any],
) -> None:
    example["space"] = {
        "beta": {"type": "float", "low": 0.9, "high": 0.99, "step": 0.01, "scale": "reverse_log"}
    }
    example["sampler"] = {"type": "grid", "seed": 1}
    with pytest.raises(ValidationError) as refused:
        StudySpec.model_validate(example)
    error = refused.value.errors()[0]
    assert error["loc"] == ("space", "beta", "scale") and "categorical" in error["msg"]
    assert StudySpec.from_stored(example).space["beta"].grid_values()[:2] == [0.9, 0.91]
