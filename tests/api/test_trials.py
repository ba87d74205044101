from __future__ import annotations

import optuna
import pytest
from sqlalchemy import update

from service.tables import Trial
from tests.api.conftest import Api, add_trials


def _numbers(api: Api, study_id: int, **params: object) -> tuple[list[int], str | None]:
    response = api.get(f"/studies/{study_id}/trials", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    return [t["number"] for t in body["items"]], body["next_cursor"]


def _all_pages(api: Api, study_id: int, **params: object) -> list[int]:
    seen: list[int] = []
    cursor = None
    while True:
        numbers, cursor = _numbers(api, study_id, **params, **({"cursor": cursor} if cursor else {}))
        seen += numbers
        if cursor is None:
            return seen


def test_pages_by_number_cover_every_trial_once(api: Api) -> None:
    study_id = api.create_study()["id"]
    add_trials(api.db, study_id=study_id, values=[float(i % 7) for i in range(25)])
    first, cursor = _numbers(api, study_id, limit=10)
    assert first == list(range(10))
    assert cursor is not None
    assert _all_pages(api, study_id, limit=10) == list(range(25))


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_pages_by_value_put_the_best_first_and_missing_values_last(api: Api, direction: str) -> None:
    study_id = api.create_study(objective={"metric": "val_loss", "direction": direction})["id"]
    values = [3.0, None, 1.0, 2.0, 1.0, None, 5.0]
    add_trials(api.db, study_id=study_id, values=values)
    ranked = _all_pages(api, study_id, order_by="value", limit=2)
    with_values = sorted(
        (i for i, v in enumerate(values) if v is not None),
        key=lambda i: ((values[i] if direction == "minimize" else -values[i]), i),  # type: ignore[operator]
    )
    assert ranked == with_values + [1, 5]


def test_filters_by_state_and_round(api: Api) -> None:
    study_id = api.create_study()["id"]
    add_trials(api.db, study_id=study_id, values=[1.0, None, 2.0])
    add_trials(api.db, study_id=study_id, values=[0.5, 0.7], start=3, round_number=2)
    assert _numbers(api, study_id, state="failed")[0] == [1]
    assert _numbers(api, study_id, round=2)[0] == [3, 4]
    assert _numbers(api, study_id, round=2, state="complete", order_by="value")[0] == [3, 4]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"state": "sleeping"}, "state"),
        ({"order_by": "colour"}, "order_by"),
        ({"round": 0}, "round"),
        ({"cursor": "!!not-a-cursor"}, "cursor"),
    ],
)
def test_bad_paging_parameters_are_a_422_naming_them(api: Api, params: dict[str, object], field: str) -> None:
    study_id = api.create_study()["id"]
    response = api.get(f"/studies/{study_id}/trials", params=params)
    assert response.status_code == 422
    assert field in [error["loc"][-1] for error in response.json()["detail"]]


def test_a_cursor_from_one_order_is_refused_by_the_other(api: Api) -> None:
    study_id = api.create_study()["id"]
    add_trials(api.db, study_id=study_id, values=[1.0, 2.0, 3.0])
    _, cursor = _numbers(api, study_id, limit=1)
    response = api.get(f"/studies/{study_id}/trials", params={"order_by": "value", "cursor": cursor})
    assert response.status_code == 422
    assert "by number" in response.json()["detail"][0]["msg"]


def test_a_trial_in_detail_has_its_intermediate_values_from_optuna(api: Api) -> None:
    study_id = api.create_study()["id"]
    storage = api.app.state.storage
    optuna_study = optuna.load_study(study_name="digits", storage=storage)
    trial = optuna_study.ask()
    trial.report(0.9, step=0)
    trial.report(0.4, step=1)
    add_trials(api.db, study_id=study_id, values=[0.4])
    with api.db.transaction() as session:
        session.execute(
            update(Trial).where(Trial.study_id == study_id).values(trial_id=trial._trial_id, last_step=1)
        )
    detail = api.get(f"/studies/{study_id}/trials/0").json()
    assert detail["intermediate_values"] == {"0": 0.9, "1": 0.4}
    assert detail["duration_s"] == 10.0
    assert detail["worker_id"] == "w1"
    assert detail["trial_id"] == trial._trial_id
    assert api.get(f"/studies/{study_id}/trials/7").status_code == 404


def test_an_enqueued_configuration_waits_in_optuna_for_the_next_lease(api: Api) -> None:
    study_id = api.create_study()["id"]
    response = api.post(f"/studies/{study_id}/trials", json={"params": {"lr": 0.01, "optimizer": "sgd"}})
    assert response.status_code == 201, response.text
    assert response.json() == {
        "number": 0,
        "round": 1,
        "params": {"lr": 0.01, "optimizer": "sgd"},
        "state": "waiting",
    }
    optuna_study = optuna.load_study(study_name="digits", storage=api.app.state.storage)
    waiting = optuna_study.get_trials(states=[optuna.trial.TrialState.WAITING])
    assert [t.user_attrs["hone_round"] for t in waiting] == [1]
    asked = optuna_study.ask()
    assert asked.suggest_float("lr", 1e-4, 1.0, log=True) == 0.01


@pytest.mark.parametrize(
    ("params", "name", "message"),
    [
        ({"lr": 2.0}, "lr", "outside"),
        ({"lr": "fast"}, "lr", "finite number"),
        ({"n_layers": 2.5}, "n_layers", "integer"),
        ({"optimizer": "rmsprop"}, "optimizer", "not one of"),
        ({"wings": 2}, "wings", "not a parameter"),
    ],
)
def test_an_enqueued_configuration_must_fit_the_original_distributions(
    api: Api, params: dict[str, object], name: str, message: str
) -> None:
    study_id = api.create_study()["id"]
    response = api.post(f"/studies/{study_id}/trials", json={"params": params})
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "params", name]
    assert message in error["msg"]


def test_nothing_can_be_enqueued_on_a_stopped_study(api: Api) -> None:
    study_id = api.create_study()["id"]
    api.post(f"/studies/{study_id}/stop")
    response = api.post(f"/studies/{study_id}/trials", json={"params": {"lr": 0.01}})
    assert response.status_code == 409
    assert api.post(f"/studies/{study_id}/trials", json={"params": {}}).status_code == 422
    assert api.post("/studies/999/trials", json={"params": {"lr": 0.1}}).status_code == 404


def test_enqueued_configurations_take_slots_of_the_round_budget(api: Api) -> None:
    study_id = api.create_study(rounds=[{"trials": 2}, {"trials": 2}])["id"]
    for lr in (0.01, 0.02):
        assert api.post(f"/studies/{study_id}/trials", json={"params": {"lr": lr}}).status_code == 201
    response = api.post(f"/studies/{study_id}/trials", json={"params": {"lr": 0.03}})
    assert response.status_code == 409
    assert "no room left" in response.json()["detail"]
    # The two enqueued configurations are the round: the next lease after them is refused.
    granted = [api.post("/leases", json={"worker": "w", "devices": ["cpu"]}, role="worker") for _ in range(3)]
    assert [r.status_code for r in granted] == [201, 201, 204]
    assert sorted(r.json()["trial"]["params"]["lr"] for r in granted[:2]) == [0.01, 0.02]


def test_a_trial_shows_the_metrics_its_result_reported(api: Api) -> None:
    study_id = api.create_study()["id"]
    grant = api.post("/leases", role="worker", json={"worker": "w", "devices": ["cpu"]}).json()
    metrics = {"test_loss": 0.25, "epochs": 12.0}
    lease_id = grant["lease"]["id"]
    api.post(f"/leases/{lease_id}/complete", role="worker", json={"value": 0.1, "metrics": metrics})
    trial = api.get(f"/studies/{study_id}/trials/{grant['trial']['number']}", role="read").json()
    assert trial["metrics"] == metrics
