"""The diagnosis on real training runs whose answer is known: the worker's own objective
runner trains the built-in MLP on digits, its result is completed over a real lease, and
``GET /diagnosis`` must name what was built in.

- a tiny network (1 × 2 units): it cannot fit digits, training error ~0.7: high bias;
- a wide unregularized network (2 × 512, l2 = 0) on a small slice (11 % of digits, ~200
  rows): training error 0, validation error ~0.08: high variance;
- the default network on all of digits: training error 0, validation error ~0.025: fine.
"""

from __future__ import annotations

from typing import Any

import pytest

from protocol import Objective
from tests.api.conftest import Api, spec
from worker.objectives import Outcome, run_objective

CASES: dict[str, dict[str, Any]] = {
    "high_bias": {"fixed": {"n_layers": 1, "hidden_units": 2}, "max_epochs": 4},
    "high_variance": {
        "fixed": {"hidden_units": 512, "l2": 0.0, "val_fraction": 0.45, "test_fraction": 0.44},
        "max_epochs": 30,
    },
    "fine": {"fixed": {}, "max_epochs": 12},
}
WORKER = {"worker": "host-1-0", "devices": ["cpu"], "host": "host"}


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    """Each case trained once, as a worker runs a trial (the same metrics reach the service)."""
    found = {}
    for verdict, case in CASES.items():
        objective = Objective(
            trainer="mlp", dataset="digits", metric="val_accuracy", direction="maximize", **case
        )
        found[verdict] = run_objective(objective, {}, device="cpu", report=lambda *_: False)
    return found


@pytest.mark.parametrize("verdict", list(CASES))
def test_a_known_case_gets_its_verdict(api: Api, outcomes: dict[str, Outcome], verdict: str) -> None:
    case = CASES[verdict]
    body = spec(
        objective={
            "dataset": "digits",
            "metric": "val_accuracy",
            "max_epochs": case["max_epochs"],
            "fixed": case["fixed"],
        },
        space={"lr": {"type": "float", "low": 0.003, "high": 0.0031}},
    )
    study_id = api.post("/studies", json=body).json()["id"]
    grant = api.post("/leases", role="worker", json=WORKER).json()
    outcome = outcomes[verdict]
    done = api.post(
        f"/leases/{grant['lease']['id']}/complete",
        role="worker",
        json={"value": outcome.value, "metrics": outcome.metrics},
    )
    assert done.status_code == 200, done.text
    found = api.get(f"/studies/{study_id}/diagnosis").json()
    assert found["verdict"] == verdict, found["why"]
    assert found["training_metric"] == "train_accuracy"
    assert found["validation_error"] == pytest.approx(1 - outcome.metrics["val_accuracy"])
