"""Real signals on real worker processes: kill -9, SIGSTOP/SIGCONT, SIGTERM, and a race.

The API runs with a 3 s grace period, 0.5 s heartbeats and a 0.5 s reaper, so a dead
worker's trial is back in the queue within seconds.
"""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.stack import Stack, kill_group, stack

pytestmark = pytest.mark.slow

FAST = {"grace_period": "3", "heartbeat_interval": "0.5", "reaper_interval": "0.5"}


def python_study(name: str, trials: int, **fixed: Any) -> dict[str, Any]:
    return {
        "name": name,
        "objective": {
            "trainer": "python",
            "entrypoint": f"tests.chaos.paced:{fixed.pop('entrypoint', 'steady')}",
            "metric": "loss",
            "direction": "minimize",
            "max_epochs": 10,
            "fixed": fixed,
        },
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "sampler": {"type": "random", "seed": 3},
        "pruner": {"type": "none"},
        "rounds": [{"trials": trials}],
    }


def running_trials(s: Stack) -> list[Any]:
    return s.sql("SELECT number, worker_id FROM hone_trials WHERE state = 'running'")


def assert_each_configuration_completed_once(s: Stack, study_id: int, budget: int) -> None:
    rows = s.sql(f"SELECT config_number, attempt, state FROM hone_trials WHERE study_id = {study_id}")
    first_attempts = [r for r in rows if r.attempt == 0]
    completed = Counter(r.config_number for r in rows if r.state == "complete")
    assert len(first_attempts) == budget
    assert len(completed) == budget and set(completed.values()) == {1}
    assert not s.sql("SELECT trial_id FROM trials WHERE state = 'RUNNING'")


def test_a_killed_worker_s_trial_is_requeued_within_the_grace_period(db_url: str, tmp_path: Path) -> None:
    with stack(db_url, tmp_path, **FAST) as s:
        study = s.post("/studies", python_study("kill-9", 4, steps=10, step_s=0.3))
        doomed = s.worker("doomed")
        s.wait(lambda: running_trials(s), timeout=30, what="a running trial")
        kill_group(doomed)  # kill -9, supervisor and slot alike
        killed_at = time.monotonic()
        s.wait(
            lambda: s.sql("SELECT reason FROM hone_trials WHERE reason LIKE 'lease expired%'"),
            timeout=10,
            what="the reaper",
        )
        assert time.monotonic() - killed_at < 3 + 2  # grace period plus a reaper sweep and slack
        s.worker("survivor", "--exit-when-idle", "2")
        s.wait_status(study["id"], "completed", timeout=60)
        assert_each_configuration_completed_once(s, study["id"], 4)


def test_a_late_result_from_a_stopped_worker_is_refused_and_it_keeps_working(
    db_url: str, tmp_path: Path
) -> None:
    with stack(db_url, tmp_path, **FAST) as s:
        study = s.post("/studies", python_study("sigstop", 3, steps=8, step_s=0.25))
        frozen = s.worker("frozen")
        s.wait(lambda: running_trials(s), timeout=30, what="a running trial")
        kill_group(frozen, signal.SIGSTOP)
        s.wait(
            lambda: s.sql("SELECT reason FROM hone_trials WHERE reason LIKE 'lease expired%'"),
            timeout=10,
            what="the reaper",
        )
        kill_group(frozen, signal.SIGCONT)
        s.wait_status(study["id"], "completed", timeout=60)
        assert frozen.poll() is None  # it carried on after the refusal
        log = s.log("frozen")
        assert "lease lost" in log or "result refused" in log
        assert log.count("outcome=complete") == 3  # it ran the retry and the rest itself
        assert_each_configuration_completed_once(s, study["id"], 3)
        # The fleet's routine calls are counted in /metrics, not written to the access log.
        metrics = httpx.get(f"{s.api}/metrics", headers=s.headers, timeout=10).text
        heartbeats = re.search(r'route="/leases/\{lease_id\}/heartbeat",status="200"\} (\d+)', metrics)
        assert heartbeats is not None and int(heartbeats.group(1)) > 0, metrics[-2000:]
        api_log = s.log("api")
        assert '/heartbeat HTTP/1.1" 200' not in api_log
        assert '"POST /api/v1/leases HTTP/1.1" 201' in api_log


def test_sigterm_gives_running_trials_back_and_exits_zero(db_url: str, tmp_path: Path) -> None:
    with stack(db_url, tmp_path, **FAST) as s:
        study = s.post("/studies", python_study("sigterm", 6, steps=100, step_s=0.2))
        worker = s.worker("worker", "--trials-per-device", "2")
        s.wait(lambda: len(running_trials(s)) == 2, timeout=30, what="two running trials")
        kill_group(worker, signal.SIGTERM)
        assert worker.wait(15) == 0
        assert not running_trials(s)
        given_back = s.sql("SELECT number FROM hone_trials WHERE reason = 'worker shutting down'")
        assert len(given_back) == 2
        waiting = s.sql(f"SELECT trial_id FROM trials WHERE study_id = {study['id']} AND state = 'WAITING'")
        assert len(waiting) == 2  # both configurations are queued again
        assert not s.sql("SELECT trial_id FROM trials WHERE state = 'RUNNING'")


def test_eight_workers_racing_for_200_trials_run_each_exactly_once(db_url: str, tmp_path: Path) -> None:
    with stack(db_url, tmp_path, grace_period="30") as s:
        study = s.post("/studies", python_study("race", 200, entrypoint="instant"))
        workers = [s.worker(f"w{i}", "--exit-when-idle", "2") for i in range(8)]
        s.wait_status(study["id"], "completed", timeout=180)
        for worker in workers:
            assert worker.wait(30) == 0
        assert_each_configuration_completed_once(s, study["id"], 200)
        assert len(s.sql(f"SELECT id FROM hone_trials WHERE study_id = {study['id']}")) == 200
        assert sum(s.log(f"w{i}").count("trial end") for i in range(8)) == 200
