"""A user's ``python`` objective that raises, hangs past ``timeout_s`` or returns NaN fails
only its own trial, with the reason recorded; the worker goes on with the next one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.chaos.cluster import cluster, python_study

pytestmark = pytest.mark.slow
BEHAVIOURS = ["raise", "hang", "nan", "ok"]


def test_a_broken_objective_fails_only_its_own_trial_with_the_reason(sqlite_url: str, tmp_path: Path) -> None:
    spec = python_study(
        "broken-objectives",
        "behaves",
        [len(BEHAVIOURS) + 2],
        space={"behaviour": {"type": "categorical", "choices": BEHAVIOURS}},
    )
    spec["objective"]["timeout_s"] = 2
    with cluster(sqlite_url, tmp_path) as hone:
        hone.start_api()
        study = hone.create_study(spec)
        for behaviour in BEHAVIOURS:
            queued = hone.request(
                "POST", f"/studies/{study}/trials", json={"params": {"behaviour": behaviour}}
            )
            assert queued.status_code == 201, queued.text
        worker = hone.start_worker()
        hone.wait_completed(study, timeout=90)
        assert worker.alive(), "one broken trial took the worker down"

        rows = hone.sql(
            "SELECT number, state, value, reason, params FROM hone_trials WHERE study_id = :s ORDER BY number",
            s=study,
        )
        params = [json.loads(row.params) if isinstance(row.params, str) else row.params for row in rows]
        by_behaviour = {p["behaviour"]: row for p, row in zip(params[: len(BEHAVIOURS)], rows, strict=False)}
        assert set(by_behaviour) == set(BEHAVIOURS)
        raised, hung, nan, ok = (by_behaviour[name] for name in BEHAVIOURS)
        assert (
            raised.state == "failed" and "ValueError: the user's objective broke on purpose" in raised.reason
        )
        assert hung.state == "failed" and "timeout: ran longer than 2 s" in hung.reason
        assert nan.state == "failed" and "nan" in nan.reason.lower()
        assert (ok.state, ok.value) == ("complete", 0.5)
        # Failures of the objective are not retried: the same configuration would fail again.
        assert len({row.number for row in rows}) == len(rows) == len(BEHAVIOURS) + 2
        assert all(row.state != "running" for row in rows)
        optuna_fail_reasons = hone.sql(
            "SELECT count(*) FROM trials WHERE study_id = :s AND state = 'FAIL'", s=study
        )[0][0]
        assert optuna_fail_reasons >= 3
