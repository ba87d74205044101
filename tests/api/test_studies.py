from __future__ import annotations

from typing import Any

import optuna
import pytest
from sqlalchemy import text

from tests.api.conftest import Api, add_trials, spec


def test_a_created_study_is_an_optuna_study_with_the_same_id(api: Api) -> None:
    study = api.create_study()
    assert study["name"] == "digits"
    assert study["status"] == "running"
    assert study["direction"] == "minimize"
    assert study["current_round"] == 1
    assert study["budget"] == 15
    assert study["spec"]["sampler"]["seed"] == 1
    loaded = optuna.load_study(study_name="digits", storage=api.app.state.storage)
    assert loaded._study_id == study["id"]
    assert loaded.user_attrs["hone_spec"]["name"] == "digits"
    rounds = api.get(f"/studies/{study['id']}/rounds").json()
    assert [r["number"] for r in rounds] == [1]
    assert rounds[0]["box"]["lr"] == {"low": 1e-4, "high": 1.0}


def test_a_name_in_use_is_a_conflict(api: Api) -> None:
    api.create_study()
    response = api.post("/studies", json=spec())
    assert response.status_code == 409
    assert "in use" in response.json()["detail"]


def test_a_name_held_by_a_plain_optuna_study_is_a_conflict(api: Api) -> None:
    optuna.create_study(study_name="digits", storage=api.app.state.storage)
    response = api.post("/studies", json=spec())
    assert response.status_code == 409
    assert api.get("/studies").json() == []


BAD_SPECS: list[tuple[str, dict[str, Any], tuple[Any, ...]]] = [
    ("no name", {"name": ""}, ("body", "name")),
    (
        "low above high",
        {"space": {"lr": {"type": "float", "low": 1.0, "high": 0.1}}},
        ("body", "space", "lr", "low"),
    ),
    (
        "log scale with zero low",
        {"space": {"lr": {"type": "float", "low": 0, "high": 1, "scale": "log"}}},
        ("body", "space", "lr", "low"),
    ),
    (
        "unknown parameter type",
        {"space": {"lr": {"type": "complex", "low": 0, "high": 1}}},
        ("body", "space", "lr"),
    ),
    ("empty space", {"space": {}}, ("body", "space")),
    ("zero trials", {"rounds": [{"trials": 0}]}, ("body", "rounds", 0, "trials")),
    ("no rounds", {"rounds": []}, ("body", "rounds")),
    ("unknown top-level field", {"colour": "red"}, ("body", "colour")),
    (
        "bad direction",
        {"objective": {"metric": "val_loss", "direction": "sideways"}},
        ("body", "objective", "direction"),
    ),
    (
        "unknown knob",
        {"space": {"wings": {"type": "int", "low": 1, "high": 2}}},
        ("body", "space", "wings"),
    ),
    ("bad sampler", {"sampler": {"type": "anneal"}}, ("body", "sampler", "type")),
    ("negative max_concurrent", {"max_concurrent": 0}, ("body", "max_concurrent")),
]


@pytest.mark.parametrize(("case", "changes", "loc"), BAD_SPECS, ids=[case for case, _, _ in BAD_SPECS])
def test_a_bad_spec_is_refused_naming_the_field(
    sqlite_url: str, make_api: Any, case: str, changes: dict[str, Any], loc: tuple[Any, ...]
) -> None:
    api = make_api(sqlite_url)
    response = api.post("/studies", json=spec(**changes))
    assert response.status_code == 422, response.text
    locs = [tuple(error["loc"]) for error in response.json()["detail"]]
    assert any(found[: len(loc)] == loc for found in locs), locs
    assert api.get("/studies").json() == []


def test_a_body_that_is_not_json_is_a_422(api: Api) -> None:
    response = api.post("/studies", content=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 422


def test_the_summary_counts_by_state_and_names_the_best(api: Api) -> None:
    study = api.create_study()
    add_trials(api.db, study_id=study["id"], values=[0.5, 0.2, None, 0.3])
    add_trials(api.db, study_id=study["id"], values=[0.1], start=4, state="pruned")
    summary = api.get(f"/studies/{study['id']}").json()
    assert summary["counts"] == {
        "running": 0,
        "complete": 3,
        "pruned": 1,
        "failed": 1,
        "interrupted": 0,
        "cancelled": 0,
        "total": 5,
        "configurations": None,
    }
    assert summary["best"]["number"] == 1  # a pruned trial's value never wins
    assert summary["best"]["value"] == 0.2


def test_a_maximised_study_picks_the_highest_value(api: Api) -> None:
    study = api.create_study(objective={"metric": "val_accuracy", "direction": "maximize"})
    add_trials(api.db, study_id=study["id"], values=[0.5, 0.9, 0.7])
    assert api.get(f"/studies/{study['id']}/best").json()["number"] == 1


def test_studies_are_listed_with_their_counts(api: Api) -> None:
    first = api.create_study()
    second = api.create_study(name="other")
    add_trials(api.db, study_id=second["id"], values=[1.0, 2.0])
    listed = api.get("/studies").json()
    assert [s["id"] for s in listed] == [first["id"], second["id"]]
    assert [s["counts"]["total"] for s in listed] == [0, 2]
    assert [s["id"] for s in api.get("/studies", params={"limit": 1, "offset": 1}).json()] == [second["id"]]
    api.post(f"/studies/{first['id']}/pause")
    assert [s["id"] for s in api.get("/studies", params={"status": "paused"}).json()] == [first["id"]]


def test_an_unknown_study_is_a_404(api: Api) -> None:
    for path in ("/studies/999", "/studies/999/trials", "/studies/999/best", "/studies/999/rounds"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert "999" in response.json()["detail"]
    assert api.post("/studies/999/pause").status_code == 404
    assert api.delete("/studies/999").status_code == 404


def test_pause_resume_and_stop_follow_the_lifecycle(api: Api) -> None:
    study_id = api.create_study()["id"]
    assert api.post(f"/studies/{study_id}/pause").json()["status"] == "paused"
    assert api.post(f"/studies/{study_id}/pause").json()["status"] == "paused"
    assert api.post(f"/studies/{study_id}/resume").json()["status"] == "running"
    assert api.post(f"/studies/{study_id}/stop").json()["status"] == "stopped"
    assert api.post(f"/studies/{study_id}/stop").json()["status"] == "stopped"
    for action in ("pause", "resume"):
        response = api.post(f"/studies/{study_id}/{action}")
        assert response.status_code == 409
        assert "stopped" in response.json()["detail"]


def test_a_deleted_study_is_gone_from_hone_and_optuna(api: Api) -> None:
    study_id = api.create_study()["id"]
    add_trials(api.db, study_id=study_id, values=[0.5])
    assert api.delete(f"/studies/{study_id}").status_code == 204
    assert api.get(f"/studies/{study_id}").status_code == 404
    assert optuna.get_all_study_names(storage=api.app.state.storage) == []
    assert api.create_study()["name"] == "digits"  # the name is free again


def test_a_study_deleted_by_another_tool_takes_its_hone_rows_and_its_id_is_never_reused(api: Api) -> None:
    study_id = api.create_study(name="first")["id"]
    lease = api.post("/leases", role="worker", json={"worker": "host-1-0", "devices": ["cpu"]}).json()
    assert lease["study"]["id"] == study_id
    # optuna-dashboard's trash icon: Optuna's own delete, on a connection of its own that
    # knows nothing of hone (no foreign-key pragma on SQLite).
    optuna.delete_study(study_name="first", storage=api.url)

    with api.db.reading() as session:
        for table in ("hone_studies", "hone_rounds", "hone_trials", "hone_trial_counts"):
            column = "id" if table == "hone_studies" else "study_id"
            left = session.execute(text(f"SELECT count(*) FROM {table} WHERE {column} = {study_id}")).scalar()
            assert left == 0, table
    workers = {w["id"]: w for w in api.get("/workers", role="read").json()}
    assert workers["host-1-0"]["current_trial"] is None

    second = api.create_study(name="second")  # was 409 "name in use" on SQLite
    assert second["id"] != study_id
    assert api.get(f"/studies/{study_id}").status_code == 404
    on_lease = api.post(f"/leases/{lease['lease']['id']}/complete", role="worker", json={"value": 1.0})
    assert on_lease.status_code in (404, 409)
    assert [s["name"] for s in api.get("/studies").json()] == ["second"]
