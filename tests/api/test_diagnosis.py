"""``GET /studies/{id}/diagnosis`` and ``"box": "diagnosis"``, over real leases and results."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api, spec

WORKER = {"worker": "host-1-0", "devices": ["cpu"], "host": "host"}
RECIPE_SPACE = {
    "lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
    "n_layers": {"type": "int", "low": 1, "high": 4},
    "hidden_units": {"type": "int", "low": 8, "high": 512, "scale": "log"},
    "l2": {"type": "float", "low": 1e-4, "high": 10.0, "scale": "log"},
    "keep_prob": {"type": "float", "low": 0.5, "high": 1.0},
}


def accuracy_study(api: Api, rounds: list[int] = [4, 4], **objective: Any) -> int:  # noqa: B006
    body = spec(
        objective={"trainer": "mlp", "dataset": "digits", "metric": "val_accuracy", **objective},
        space=RECIPE_SPACE,
        rounds=[{"trials": n} for n in rounds],
    )
    response = api.post("/studies", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def complete(api: Api, *, value: float, metrics: dict[str, float]) -> dict[str, Any]:
    grant = api.post("/leases", role="worker", json=WORKER)
    assert grant.status_code == 201, grant.text
    lease_id = grant.json()["lease"]["id"]
    done = api.post(f"/leases/{lease_id}/complete", role="worker", json={"value": value, "metrics": metrics})
    assert done.status_code == 200, done.text
    # The trial, with the objective it was granted to run.
    trial: dict[str, Any] = {**grant.json()["trial"], "objective": grant.json()["objective"]}
    return trial


def test_a_model_that_fits_its_training_set_badly_is_high_bias_with_the_lecture_s_words(api: Api) -> None:
    study_id = accuracy_study(api, rounds=[10])
    for val in (0.80, 0.81, 0.82, 0.83, 0.84, 0.85, 0.86, 0.87, 0.88, 0.89):
        complete(api, value=val, metrics={"val_accuracy": val, "train_accuracy": val + 0.01})
    found = api.get(f"/studies/{study_id}/diagnosis").json()
    assert found["verdict"] == "high_bias"
    assert found["error"] == "1 − val_accuracy"
    assert found["training_metric"] == "train_accuracy"
    # The best fifth of 10 completed trials: the medians of the best two.
    assert [round(t["validation_error"], 6) for t in found["trials"]] == [0.11, 0.12]
    assert abs(found["training_error"] - 0.105) < 1e-9
    assert abs(found["validation_error"] - 0.115) < 1e-9
    assert abs(found["variance"] - 0.01) < 1e-9
    assert found["target_source"] == "default" and found["target_error"] == 0
    assert found["thresholds"]["bias"] == 0.05 and found["bias_judged"] is True
    assert "Bigger network" in " ".join(found["advice"])
    assert [t["validation_error"] for t in found["trials"]] == sorted(
        t["validation_error"] for t in found["trials"]
    )
    moved = {m["param"]: m for m in found["proposal"]["moves"]}
    assert set(moved) == {"n_layers", "hidden_units", "l2", "keep_prob"}
    assert moved["n_layers"]["direction"] == "up" and moved["l2"]["direction"] == "down"
    assert found["proposal"]["max_epochs"] == 60  # train longer: twice the objective's 30


def test_the_recipe_s_round_trains_longer_and_its_grants_carry_the_raised_epochs(api: Api) -> None:
    # Round 1 has room left when the recipe's round is opened (else it opens round 2 itself).
    study_id = accuracy_study(api, rounds=[6, 4, 3], max_epochs=10, max_epochs_limit=30)
    first = complete(api, value=0.8, metrics={"val_accuracy": 0.8, "train_accuracy": 0.81})
    for val in (0.78, 0.79, 0.8, 0.8):
        complete(api, value=val, metrics={"val_accuracy": val, "train_accuracy": val + 0.01})
    assert first["objective"]["max_epochs"] == 10
    assert api.get(f"/studies/{study_id}/diagnosis").json()["proposal"]["max_epochs"] == 20
    opened = api.post(f"/studies/{study_id}/rounds", json={"box": "diagnosis"})
    assert opened.status_code == 201, opened.text
    assert opened.json()["max_epochs"] == 20
    trial = complete(api, value=0.9, metrics={"val_accuracy": 0.9, "train_accuracy": 0.91})
    assert trial["round"] == 2 and trial["objective"]["max_epochs"] == 20
    # An explicit count past the limit names the field; the round as it was is kept.
    too_many = api.post(f"/studies/{study_id}/rounds", json={"max_epochs": 31})
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["body", "max_epochs"]
    assert "between 1 and 30" in too_many.json()["detail"][0]["msg"]
    # The next round keeps the raised epochs unless told otherwise.
    for _ in range(3):
        complete(api, value=0.85, metrics={"val_accuracy": 0.85, "train_accuracy": 0.86})
    listed = api.get(f"/studies/{study_id}/rounds").json()
    assert [r["max_epochs"] for r in listed] == [10, 20, 20]
    assert (
        complete(api, value=0.9, metrics={"val_accuracy": 0.9, "train_accuracy": 0.9})["objective"][
            "max_epochs"
        ]
        == 20
    )


def test_a_model_far_better_on_training_data_is_high_variance_and_the_box_regularizes(api: Api) -> None:
    study_id = accuracy_study(api)
    trials = [complete(api, value=v, metrics={"val_accuracy": v, "train_accuracy": 1.0}) for v in (0.88, 0.9)]
    found = api.get(f"/studies/{study_id}/diagnosis").json()
    assert found["verdict"] == "high_variance"
    best = next(t for t in trials if t["number"] == found["trials"][0]["number"])
    box = found["proposal"]["box"]
    # l2 moves up from the incumbent, keep_prob down to it; the box contains the incumbent.
    assert box["l2"]["low"] <= best["params"]["l2"] < box["l2"]["high"]
    assert box["keep_prob"]["low"] < best["params"]["keep_prob"] <= box["keep_prob"]["high"]
    opened = api.post(f"/studies/{study_id}/rounds", json={"box": "diagnosis"})
    assert opened.status_code == 201, opened.text
    assert opened.json()["box"] == box
    assert api.get(f"/studies/{study_id}").json()["current_round"] == 2


def test_a_target_error_makes_a_small_bias_fine_and_a_bad_one_is_a_422_naming_it(api: Api) -> None:
    study_id = accuracy_study(api, target_error=0.1)
    complete(api, value=0.87, metrics={"val_accuracy": 0.87, "train_accuracy": 0.88})
    found = api.get(f"/studies/{study_id}/diagnosis").json()
    assert found["verdict"] == "fine"
    assert found["target_source"] == "objective.target_error"
    assert abs(found["avoidable_bias"] - 0.02) < 1e-12
    for bad in (-0.1, 1.5, "x"):
        body = spec(objective={"dataset": "digits", "metric": "val_accuracy", "target_error": bad})
        response = api.post("/studies", json=body)
        assert response.status_code == 422, bad
        assert response.json()["detail"][0]["loc"][-2:] == ["objective", "target_error"]


def test_thresholds_of_the_request_decide_and_are_echoed(api: Api) -> None:
    study_id = accuracy_study(api)
    complete(api, value=0.9, metrics={"val_accuracy": 0.9, "train_accuracy": 0.97})
    path = f"/studies/{study_id}/diagnosis"
    assert api.get(path).json()["verdict"] == "high_variance"
    relaxed = api.get(path, params={"variance_threshold": 0.1}).json()
    assert relaxed["verdict"] == "fine"
    assert relaxed["thresholds"]["variance"] == 0.1
    assert api.get(path, params={"bias_threshold": -1}).status_code == 422


def test_unknown_study_bad_round_and_no_data_answer_404_422_409(api: Api) -> None:
    assert api.get("/studies/999/diagnosis").status_code == 404
    study_id = accuracy_study(api)
    empty = api.get(f"/studies/{study_id}/diagnosis")
    assert empty.status_code == 409 and "no completed trial" in empty.json()["detail"]
    complete(api, value=0.9, metrics={"val_accuracy": 0.9})  # an old worker: no training metric
    missing = api.get(f"/studies/{study_id}/diagnosis")
    assert missing.status_code == 409
    assert "train_accuracy" in missing.json()["detail"]
    assert api.post(f"/studies/{study_id}/rounds", json={"box": "diagnosis"}).status_code == 409
    for round_ in (0, 2, 2**70):
        response = api.get(f"/studies/{study_id}/diagnosis", params={"round": round_})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "round"]


def test_a_round_is_diagnosed_from_its_own_trials(api: Api) -> None:
    study_id = accuracy_study(api)
    complete(api, value=0.7, metrics={"val_accuracy": 0.7, "train_accuracy": 0.72})
    assert api.post(f"/studies/{study_id}/rounds", json={}).status_code == 201
    complete(api, value=0.9, metrics={"val_accuracy": 0.9, "train_accuracy": 1.0})
    assert api.get(f"/studies/{study_id}/diagnosis", params={"round": 1}).json()["verdict"] == "high_bias"
    second = api.get(f"/studies/{study_id}/diagnosis", params={"round": 2}).json()
    assert second["verdict"] == "high_variance" and second["round"] == 2
    assert api.get(f"/studies/{study_id}/diagnosis").json()["trials"][0]["round"] == 2


def test_a_python_objective_reporting_train_metric_gets_advice_but_no_box(api: Api) -> None:
    body = spec(
        objective={"trainer": "python", "entrypoint": "m:f", "metric": "loss", "direction": "minimize"},
        space={"lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"}},
    )
    study_id = api.post("/studies", json=body).json()["id"]
    complete(api, value=0.5, metrics={"train_loss": 0.1})
    found = api.get(f"/studies/{study_id}/diagnosis").json()
    assert found["training_metric"] == "train_loss"
    assert found["verdict"] == "high_variance"  # 0.4 > a quarter of 0.5
    assert found["bias_judged"] is False  # a loss against the default target 0
    assert found["proposal"] is None and "advice only" in found["proposal_note"]
    refused = api.post(f"/studies/{study_id}/rounds", json={"box": "diagnosis"})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "box"]
