from __future__ import annotations

import optuna

from tests.api.conftest import Api, add_trials


def _params(number: int) -> dict[str, object]:
    return {"lr": 10 ** (-3 + (number % 3) * 0.1), "n_layers": 1 + number % 2, "optimizer": "adam"}


def test_the_next_round_is_previewed_narrowed_and_nothing_opens(api: Api) -> None:
    study_id = api.create_study()["id"]
    add_trials(api.db, study_id=study_id, values=[float(i) for i in range(10)], params=_params)
    preview = api.get(f"/studies/{study_id}/rounds/next").json()
    assert preview["number"] == 2
    assert preview["budget"] == 5
    assert preview["box"]["optimizer"] == {"choices": ["adam"]}
    assert preview["box"]["lr"]["high"] < 1.0
    assert [r["number"] for r in api.get(f"/studies/{study_id}/rounds").json()] == [1]


def test_opening_the_next_round_closes_the_current_one_with_its_best(api: Api) -> None:
    study_id = api.create_study()["id"]
    add_trials(api.db, study_id=study_id, values=[0.3, 0.1, 0.2], params=_params)
    opened = api.post(f"/studies/{study_id}/rounds", json={})
    assert opened.status_code == 201, opened.text
    assert opened.json()["number"] == 2
    assert opened.json()["status"] == "open"
    rounds = api.get(f"/studies/{study_id}/rounds").json()
    assert [(r["number"], r["status"]) for r in rounds] == [(1, "closed"), (2, "open")]
    assert rounds[0]["best_trial_number"] == 1
    assert rounds[0]["counts"]["complete"] == 3
    assert rounds[0]["counts"]["configurations"] == 3
    assert rounds[1]["counts"] == {
        "running": 0,
        "complete": 0,
        "pruned": 0,
        "failed": 0,
        "interrupted": 0,
        "cancelled": 0,
        "total": 0,
        "configurations": 0,
    }
    assert api.get(f"/studies/{study_id}").json()["current_round"] == 2
    attrs = optuna.load_study(study_name="digits", storage=api.app.state.storage).user_attrs
    assert attrs["hone_current_round"] == 2


def test_a_round_can_be_opened_with_an_explicit_box_and_budget(api: Api) -> None:
    study_id = api.create_study()["id"]
    box = {"lr": {"low": 0.001, "high": 0.01}, "optimizer": {"choices": ["sgd"]}}
    opened = api.post(f"/studies/{study_id}/rounds", json={"box": box, "trials": 3}).json()
    assert opened["budget"] == 3
    assert opened["box"]["lr"] == {"low": 0.001, "high": 0.01}
    assert opened["box"]["optimizer"] == {"choices": ["sgd"]}
    assert opened["box"]["n_layers"] == {"low": 1, "high": 4}


def test_a_box_outside_the_original_bounds_is_a_422(api: Api) -> None:
    study_id = api.create_study()["id"]
    response = api.post(f"/studies/{study_id}/rounds", json={"box": {"lr": {"low": 0.5, "high": 2.0}}})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "box"]
    assert "lr" in response.json()["detail"][0]["msg"]
    assert api.post(f"/studies/{study_id}/rounds", json={"trials": 0}).status_code == 422
    assert api.post(f"/studies/{study_id}/rounds", json={"colour": 1}).status_code == 422


def test_a_round_past_the_spec_needs_a_budget(api: Api) -> None:
    study_id = api.create_study()["id"]
    assert api.post(f"/studies/{study_id}/rounds", json={}).status_code == 201
    response = api.post(f"/studies/{study_id}/rounds", json={})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "trials"]
    assert api.get(f"/studies/{study_id}/rounds/next").json()["budget"] is None
    assert api.post(f"/studies/{study_id}/rounds", json={"trials": 2}).json()["number"] == 3


def test_a_stopped_study_opens_no_round(api: Api) -> None:
    study_id = api.create_study()["id"]
    api.post(f"/studies/{study_id}/stop")
    assert api.post(f"/studies/{study_id}/rounds", json={}).status_code == 409
    assert api.get("/studies/999/rounds/next").status_code == 404
    assert api.post("/studies/999/rounds", json={}).status_code == 404


def test_a_completed_study_has_no_next_round_to_preview(api: Api) -> None:
    study_id = api.create_study(rounds=[{"trials": 1}])["id"]
    grant = api.post("/leases", role="worker", json={"worker": "w", "devices": ["cpu"]}).json()
    api.post(f"/leases/{grant['lease']['id']}/complete", role="worker", json={"value": 0.5})
    assert api.get(f"/studies/{study_id}").json()["status"] == "completed"
    answer = api.get(f"/studies/{study_id}/rounds/next", role="read")
    assert answer.status_code == 409
    assert "no next round" in answer.json()["detail"]
    api.post(f"/studies/{study_id}/stop")
    assert api.get(f"/studies/{study_id}/rounds/next", role="read").status_code == 409


def test_a_completed_study_is_continued_with_a_new_round(api: Api) -> None:
    worker = {"worker": "w", "devices": ["cpu"]}
    study_id = api.create_study(rounds=[{"trials": 2}])["id"]

    def run_one() -> dict[str, object]:
        grant = api.post("/leases", "worker", json=worker)
        assert grant.status_code == 201, grant.text
        lease_id = grant.json()["lease"]["id"]
        value = 0.5 - 0.1 * grant.json()["trial"]["number"]
        assert api.post(f"/leases/{lease_id}/complete", "worker", json={"value": value}).status_code == 200
        trial: dict[str, object] = grant.json()["trial"]
        return trial

    assert [run_one()["round"] for _ in range(2)] == [1, 1]
    assert api.post("/leases", "worker", json=worker).status_code == 204
    assert api.get(f"/studies/{study_id}").json()["status"] == "completed"

    opened = api.post(f"/studies/{study_id}/rounds", json={"trials": 2})
    assert opened.status_code == 201, opened.text
    assert opened.json()["number"] == 2
    detail = api.get(f"/studies/{study_id}").json()
    assert (detail["status"], detail["current_round"]) == ("running", 2)
    box = opened.json()["box"]
    trials = [run_one() for _ in range(2)]
    assert [(t["number"], t["round"]) for t in trials] == [(2, 2), (3, 2)]
    for trial in trials:
        assert box["lr"]["low"] <= trial["params"]["lr"] <= box["lr"]["high"]  # type: ignore[index]
    assert api.post("/leases", "worker", json=worker).status_code == 204
    detail = api.get(f"/studies/{study_id}").json()
    assert (detail["status"], detail["best"]["number"]) == ("completed", 3)
    rounds = api.get(f"/studies/{study_id}/rounds").json()
    assert [(r["number"], r["status"], r["counts"]["complete"]) for r in rounds] == [
        (1, "closed", 2),
        (2, "closed", 2),
    ]
    assert api.post(f"/studies/{study_id}/rounds", json={}).status_code == 422  # past the spec: a budget
