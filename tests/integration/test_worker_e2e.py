"""Real `hone api` and `hone worker` processes: a 3-round digits study to the end, and step
reports coalesced when they come faster than a round trip."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.processes import free_port, hone, wait_http
from tests.integration.stack import stack

pytestmark = pytest.mark.slow

DIGITS = {
    "name": "digits-3-rounds",
    "objective": {"trainer": "mlp", "dataset": "digits", "max_epochs": 4, "metric": "val_accuracy"},
    "space": {
        "lr": {"type": "float", "low": 1e-5, "high": 3e-1, "scale": "log"},
        "hidden_units": {"type": "int", "low": 8, "high": 64},
    },
    "sampler": {"type": "random", "seed": 7},
    "pruner": {"type": "median", "n_startup_trials": 3, "n_warmup_steps": 1},
    "rounds": [{"trials": 8}, {"trials": 5}, {"trials": 4}],
    "narrowing": {"top_fraction": 0.3, "min_top": 3, "margin": 0.1},
}


def test_workers_run_a_three_round_digits_study_to_completion(db_url: str, tmp_path: Path) -> None:
    with stack(db_url, tmp_path, grace_period="20", heartbeat_interval="1", reaper_interval="1") as running:
        study = running.post("/studies", DIGITS)
        # Every epoch reported on its own: these 4-epoch trials take less than a few round
        # trips, so by default their steps would travel together and rarely meet the pruner.
        worker = running.worker(
            "worker", "--trials-per-device", "2", "--exit-when-idle", "4", "--report-overhead", "0"
        )
        summary = running.wait_status(study["id"], "completed", timeout=150)
        assert worker.wait(30) == 0

        assert summary["counts"]["total"] == 17  # no retries: one row per configuration
        assert summary["counts"]["running"] == 0 and summary["counts"]["failed"] == 0
        assert summary["counts"]["pruned"] > 0  # the median pruner stopped some hopeless trials
        per_round = Counter(
            r
            for (r,) in running.sql(
                f"SELECT round FROM hone_trials WHERE study_id = {study['id']} AND attempt = 0"
            )
        )
        assert per_round == {1: 8, 2: 5, 3: 4}

        boxes = [r["box"]["lr"] for r in running.get(f"/studies/{study['id']}/rounds")]
        widths = [math.log10(b["high"]) - math.log10(b["low"]) for b in boxes]
        assert widths[1] < widths[0] and widths[2] <= widths[1]  # coarse to fine

        log = running.log("worker")
        assert log.count("trial start") == 17 and log.count("trial end") == 17

        # optuna-dashboard reads the same database and shows the same trials.
        port = free_port()
        dashboard = running.start(hone("dashboard", "--port", str(port)), "dashboard")
        wait_http(f"http://127.0.0.1:{port}/api/studies", process=dashboard, timeout=60)
        shown = httpx.get(f"http://127.0.0.1:{port}/api/studies/{study['id']}", timeout=30).json()
        assert len(shown["trials"]) == 17
        assert Counter(t["state"] for t in shown["trials"]) == {
            "Complete": summary["counts"]["complete"],
            "Pruned": summary["counts"]["pruned"],
        }


def _reports_received(running: Any) -> float:
    text = httpx.get(f"{running.api}/metrics", headers=running.headers, timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("hone_http_requests_total") and '/report"' in line and 'status="200"' in line
    )


def _burst_study(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "objective": {"trainer": "python", "entrypoint": "tests.chaos.objectives:burst", "metric": "loss"},
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "pruner": {"type": "none"},
        "rounds": [{"trials": 10}],
    }


def test_steps_faster_than_a_round_trip_are_sent_together_and_every_one_is_recorded(
    db_url: str, tmp_path: Path
) -> None:
    with stack(db_url, tmp_path, grace_period="20", heartbeat_interval="1", reaper_interval="1") as running:

        def run(name: str, *flags: str) -> tuple[int, float]:
            before = _reports_received(running)
            study = running.post("/studies", _burst_study(name))
            worker = running.worker(name, "--exit-when-idle", "2", *flags)
            running.wait_status(study["id"], "completed", timeout=90)
            assert worker.wait(30) == 0
            steps = running.sql(
                "SELECT count(*) FROM trial_intermediate_values v JOIN trials t ON t.trial_id = v.trial_id "
                f"WHERE t.study_id = {study['id']} GROUP BY v.trial_id"
            )
            assert [n for (n,) in steps] == [20] * 10, "every step of every trial is in Optuna's table"
            return study["id"], _reports_received(running) - before

        _, coalesced = run("coalesced")
        _, one_by_one = run("one-by-one", "--report-overhead", "0")
        # 200 steps each way; by default most travel together (with the result, even).
        assert one_by_one == 200
        assert coalesced <= 40, f"{coalesced} report calls for 200 steps"
