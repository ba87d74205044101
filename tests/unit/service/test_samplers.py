"""Sampler variants: each builds its Optuna sampler and says whether it needs history."""

from __future__ import annotations

from typing import Any

import pytest
from optuna.samplers import BaseSampler

from service.narrowing import full_box
from service.samplers import VARIANTS
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
