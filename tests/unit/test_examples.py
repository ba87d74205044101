"""The example studies shipped in examples/ are valid specs, and the Python objective works."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from examples.python_objective import NOISE, branin, polynomial
from service.diagnosis import LOSS_SHARE, judge
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


@pytest.mark.parametrize(
    ("params", "verdict"),
    [
        ({"degree": 1, "rows": 200}, "high_bias"),  # a line through sin(3x)
        ({"degree": 15, "rows": 20}, "high_variance"),  # 16 weights, 20 points, no penalty
        ({"degree": 5, "rows": 200}, "fine"),
    ],
)
def test_the_polynomial_example_reports_its_training_loss_and_gets_the_known_verdict(
    params: dict[str, int], verdict: str
) -> None:
    result = polynomial(params, lambda *_: False)
    assert set(result) == {"value", "train_loss"}
    # As GET /diagnosis reads a loss: error = value, target = the noise's variance (Bayes).
    threshold = LOSS_SHARE * result["value"]
    found = judge(
        training_error=result["train_loss"],
        validation_error=result["value"],
        target=NOISE**2,
        bias=threshold,
        variance=threshold,
        bias_judged=True,
    )
    assert found == verdict
