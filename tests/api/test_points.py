"""``GET /studies/{id}/points``: what the page draws, bounded per round however large the
study, with the best trials kept and the best-so-far steps computed in SQL."""

from __future__ import annotations

import random
import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from service.tables import Trial, utcnow
from tests.api.conftest import Api, add_trials


def _finish_in_order(api: Api, study_id: int) -> None:
    """Trials finished one second apart, in trial-number order."""
    start = utcnow() - timedelta(hours=1)
    with api.db.transaction() as session:
        for number in range(200):
            session.execute(
                update(Trial)
                .where(Trial.study_id == study_id, Trial.number == number)
                .values(finished_at=start + timedelta(seconds=number))
            )


def test_a_small_study_lists_every_completed_trial_per_round(api: Api) -> None:
    study_id = api.create_study()["id"]
    add_trials(api.db, study_id=study_id, values=[3.0, None, 2.0, 5.0])
    add_trials(api.db, study_id=study_id, values=[1.5, 4.0], start=4, round_number=2)
    body = api.get(f"/studies/{study_id}/points", role="read").json()
    assert body["direction"] == "minimize"
    assert [(r["round"], r["complete"], r["sampled"]) for r in body["rounds"]] == [
        (1, 3, False),
        (2, 2, False),
    ]
    assert [(p["number"], p["value"]) for p in body["rounds"][0]["points"]] == [(0, 3.0), (2, 2.0), (3, 5.0)]
    assert body["rounds"][1]["points"][0]["params"] == {"lr": 0.01, "n_layers": 2, "optimizer": "adam"}


def test_best_so_far_lists_each_improvement_in_finish_order(api: Api) -> None:
    study_id = api.create_study()["id"]
    add_trials(api.db, study_id=study_id, values=[3.0, 4.0, 2.0, 2.0, None, 2.5, 1.0, 1.5])
    _finish_in_order(api, study_id)
    steps = api.get(f"/studies/{study_id}/points").json()["best_so_far"]
    assert [(s["number"], s["value"]) for s in steps] == [(0, 3.0), (2, 2.0), (6, 1.0)]


def test_best_so_far_of_a_maximized_study_follows_the_highest_value(api: Api) -> None:
    objective = {"trainer": "mlp", "dataset": "digits", "metric": "val_accuracy", "direction": "maximize"}
    study_id = api.create_study(objective=objective)["id"]
    add_trials(api.db, study_id=study_id, values=[0.5, 0.4, 0.7, 0.9, 0.8])
    _finish_in_order(api, study_id)
    steps = api.get(f"/studies/{study_id}/points").json()["best_so_far"]
    assert [(s["number"], s["value"]) for s in steps] == [(0, 0.5), (2, 0.7), (3, 0.9)]


def test_a_large_round_is_down_sampled_keeping_its_best_and_its_spread(api: Api) -> None:
    study_id = api.create_study()["id"]
    rng = random.Random(1)
    values = [rng.random() for _ in range(3000)]
    add_trials(api.db, study_id=study_id, values=values)
    body = api.get(f"/studies/{study_id}/points", params={"per_round": 200}).json()
    (round_,) = body["rounds"]
    assert round_["complete"] == 3000 and round_["sampled"] is True
    numbers = [p["number"] for p in round_["points"]]
    assert len(numbers) <= 200 and len(numbers) == len(set(numbers)) and numbers == sorted(numbers)
    best_50 = sorted(range(3000), key=lambda n: values[n])[:50]
    assert set(best_50) <= set(numbers), "the round's best trials are all drawn"
    # The rest is spread over the whole round, not its first trials only.
    spread = sorted(set(numbers) - set(best_50))
    assert len(spread) >= 100 and spread[0] < 100 and spread[-1] > 2800


def test_points_refuses_a_per_round_out_of_range_and_an_unknown_study(api: Api) -> None:
    study_id = api.create_study()["id"]
    for bad in (0, 5001, "many"):
        response = api.get(f"/studies/{study_id}/points", params={"per_round": bad})
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["query", "per_round"]
    assert api.get("/studies/999/points").status_code == 404


@pytest.mark.long
def test_points_of_a_100k_trial_study_stay_bounded_and_fast(api: Api) -> None:
    study_id = api.create_study()["id"]
    rng = random.Random(0)
    values = [rng.random() for _ in range(100_000)]
    add_trials(api.db, study_id=study_id, values=values[:60_000])
    add_trials(api.db, study_id=study_id, values=values[60_000:], start=60_000, round_number=2)
    if not api.db.is_sqlite:
        with api.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE hone_trials")
    api.get(f"/studies/{study_id}/points")
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        response = api.get(f"/studies/{study_id}/points")
        best = min(best, time.perf_counter() - started)
    body = response.json()
    assert [len(r["points"]) <= 500 for r in body["rounds"]] == [True, True]
    assert body["rounds"][0]["points"][0]["value"] is not None
    assert min(p["value"] for r in body["rounds"] for p in r["points"]) == min(values)
    print(f"points of 100k trials: {best * 1000:.0f} ms")
    assert best < 1.0, f"points took {best * 1000:.0f} ms"
