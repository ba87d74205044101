from __future__ import annotations

import csv
import io
import json

import pytest

from service import importance
from tests.api.conftest import Api, add_trials


def _params(number: int) -> dict[str, object]:
    return {
        "lr": 10 ** (-4 + (number % 40) * 0.1),
        "n_layers": 1 + number % 4,
        "optimizer": ["adam", "sgd"][number % 2],
    }


def test_best_is_a_404_until_a_trial_completes(api: Api) -> None:
    study_id = api.create_study()["id"]
    add_trials(api.db, study_id=study_id, values=[None])
    response = api.get(f"/studies/{study_id}/best")
    assert response.status_code == 404
    assert "no completed trial" in response.json()["detail"]
    add_trials(api.db, study_id=study_id, values=[0.4, 0.3], start=1)
    assert api.get(f"/studies/{study_id}/best").json()["number"] == 2


def test_importance_needs_two_completed_trials(api: Api) -> None:
    study_id = api.create_study()["id"]
    add_trials(api.db, study_id=study_id, values=[0.5], params=_params)
    response = api.get(f"/studies/{study_id}/importance")
    assert response.status_code == 409
    assert "at least 2" in response.json()["detail"]


def test_importance_ranks_the_parameter_that_decides_the_value(api: Api) -> None:
    study_id = api.create_study()["id"]
    values = [float(1 + n % 4) + 0.01 * (n % 3) for n in range(40)]  # n_layers decides
    add_trials(api.db, study_id=study_id, values=values, params=_params)
    body = api.get(f"/studies/{study_id}/importance").json()
    assert body["sampled"] is False
    assert body["trials_used"] == 40
    assert max(body["importances"], key=body["importances"].get) == "n_layers"


def test_importance_over_many_trials_uses_a_stated_sample(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importance, "SAMPLE", 20)
    monkeypatch.setattr(importance.param_importances, "__kwdefaults__", {"sample": 20})
    study_id = api.create_study()["id"]
    add_trials(api.db, study_id=study_id, values=[float(n % 4) for n in range(50)], params=_params)
    body = api.get(f"/studies/{study_id}/importance").json()
    assert body["sampled"] is True
    assert body["trials_used"] == 20
    assert body["completed_trials"] == 50
    assert "sample of 20 of the 50" in body["note"]
    assert body["note"].startswith("PED-ANOVA over")


def test_export_as_csv_flattens_params_into_columns(api: Api) -> None:
    study_id = api.create_study()["id"]
    add_trials(api.db, study_id=study_id, values=[0.5, None], params=_params)
    response = api.get(f"/studies/{study_id}/export", params={"format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["number"] for row in rows] == ["0", "1"]
    assert rows[0]["params_optimizer"] == "adam"
    assert rows[0]["params_n_layers"] == "1"
    assert rows[0]["value"] == "0.5"
    assert rows[1]["value"] == ""
    assert rows[1]["state"] == "failed"


def test_export_as_json_is_an_array_of_trials_across_batches(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service import results

    monkeypatch.setattr(results, "MAX_PAGE", 3)
    monkeypatch.setattr(results.trial_batches, "__kwdefaults__", {"batch": 3})
    study_id = api.create_study()["id"]
    add_trials(api.db, study_id=study_id, values=[float(n) for n in range(7)], params=_params)
    body = json.loads(api.get(f"/studies/{study_id}/export", params={"format": "json"}).text)
    assert [t["number"] for t in body] == list(range(7))
    assert body[3]["params"]["n_layers"] == 4
    empty = api.create_study(name="empty")["id"]
    assert json.loads(api.get(f"/studies/{empty}/export", params={"format": "json"}).text) == []
    assert api.get(f"/studies/{study_id}/export", params={"format": "xml"}).status_code == 422


def test_importance_names_its_evaluator_and_the_request_chooses_it(api: Api) -> None:
    study_id = api.create_study()["id"]
    values = [float(1 + n % 4) + 0.01 * (n % 3) for n in range(40)]  # n_layers decides
    add_trials(api.db, study_id=study_id, values=values, params=_params)
    default = api.get(f"/studies/{study_id}/importance").json()
    assert (default["evaluator"], default["round"]) == ("ped_anova", None)
    for evaluator in ("ped_anova", "fanova", "mean_decrease_impurity"):
        body = api.get(f"/studies/{study_id}/importance", params={"evaluator": evaluator}).json()
        assert body["evaluator"] == evaluator
        assert max(body["importances"], key=body["importances"].get) == "n_layers"
    unknown = api.get(f"/studies/{study_id}/importance", params={"evaluator": "shap"})
    assert unknown.status_code == 422


def test_the_default_importance_is_what_optuna_computes_by_default(api: Api) -> None:
    study_id = api.create_study()["id"]
    values = [float(n % 7) * 0.3 + float(1 + n % 4) for n in range(40)]
    add_trials(api.db, study_id=study_id, values=values, params=_params)
    body = api.get(f"/studies/{study_id}/importance").json()
    ped = api.get(f"/studies/{study_id}/importance", params={"evaluator": "ped_anova"}).json()
    fanova = api.get(f"/studies/{study_id}/importance", params={"evaluator": "fanova"}).json()
    assert body["importances"] == ped["importances"] != fanova["importances"]


def test_importance_per_round_uses_that_rounds_trials_in_its_box(api: Api) -> None:
    study_id = api.create_study()["id"]
    # Round 1: n_layers decides. Round 2 (lr and n_layers narrowed): lr decides.
    add_trials(api.db, study_id=study_id, values=[float(1 + n % 4) for n in range(20)], params=_params)
    box = {"lr": {"low": 1e-3, "high": 1e-2}, "n_layers": {"low": 2, "high": 3}}
    assert api.post(f"/studies/{study_id}/rounds", json={"box": box, "trials": 20}).status_code == 201

    def narrowed(number: int) -> dict[str, object]:
        lr = 10 ** (-3 + (number % 10) / 10)
        return {"lr": lr, "n_layers": 2 + number % 2, "optimizer": ["adam", "sgd"][number % 3 % 2]}

    add_trials(
        api.db,
        study_id=study_id,
        values=[float(n % 10) for n in range(20, 40)],
        start=20,
        round_number=2,
        params=narrowed,
    )
    first = api.get(f"/studies/{study_id}/importance", params={"round": 1}).json()
    second = api.get(f"/studies/{study_id}/importance", params={"round": 2}).json()
    assert (first["round"], first["completed_trials"]) == (1, 20)
    assert (second["round"], second["completed_trials"], second["trials_used"]) == (2, 20, 20)
    assert max(first["importances"], key=first["importances"].get) == "n_layers"
    assert max(second["importances"], key=second["importances"].get) == "lr"
    assert api.get(f"/studies/{study_id}/importance", params={"round": 3}).status_code == 404
    assert api.get(f"/studies/{study_id}/importance", params={"round": 0}).status_code == 422
