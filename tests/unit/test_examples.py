"""The example studies shipped in examples/ are valid specs, and the Python objective works."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from examples.python_objective import branin
from service.spec import StudySpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", ["digits.json", "branin.json"])
def test_the_example_spec_is_valid(name: str) -> None:
    StudySpec.model_validate(json.loads((EXAMPLES / name).read_text()))


def test_the_digits_example_is_a_three_round_coarse_to_fine_search() -> None:
    spec = StudySpec.model_validate(json.loads((EXAMPLES / "digits.json").read_text()))
    assert [r.trials for r in spec.rounds] == [12, 6, 6]
    assert spec.space["lr"].scale == "log"  # type: ignore[union-attr]
    assert spec.space["beta"].when == {"optimizer": ["momentum"]}


def test_branin_reports_and_returns_its_known_minimum() -> None:
    reports: list[tuple[int, float]] = []
    value = branin({"x1": math.pi, "x2": 2.275}, lambda step, value: reports.append((step, value)) or False)
    assert value == pytest.approx(0.397887, abs=1e-5)
    assert reports == [(1, value)]
