"""Crashes of real processes: the study still completes with exactly its budget.

Workers and the API are killed with real signals while trials run; the service's reaper
and the workers' retries must recover within the grace period, every configuration must
be counted once, and nothing may be left RUNNING (see ``Cluster.check_exact_budget``).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.chaos.cluster import GRACE_PERIOD, cluster, python_study

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
RECOVERY_S = GRACE_PERIOD + 0.3 + 3  # grace period + reaper interval + a slow CI machine


@pytest.mark.long  # CI: tests/chaos/test_worker_signals.py covers the single kill on both databases
def test_a_worker_killed_mid_trial_is_reaped_within_the_grace_period_and_nothing_is_lost(
    postgres_url: str, tmp_path: Path
) -> None:
    with cluster(postgres_url, tmp_path, HONE_MAX_RETRIES="5") as hone:
        hone.start_api()
        study = hone.create_study(python_study("killed-worker", "steady", [4, 2]))
        hone.start_worker()
        hone.start_worker()
        number, worker_id, _ = hone.wait_running(study)[0]
        victim = hone.worker_of(worker_id)
        victim.signal_group(signal.SIGKILL)
        killed_at = time.monotonic()
        victim.wait(10)
        while True:
            rows = hone.sql(
                "SELECT state, reason FROM hone_trials WHERE study_id = :s AND number = :n", s=study, n=number
            )
            if rows[0][0] != "running":
                break
            assert time.monotonic() - killed_at < RECOVERY_S, "the dead worker's trial was not reaped in time"
            time.sleep(0.1)
        assert rows[0][0] == "failed" and "lease expired" in rows[0][1]
        hone.wait_completed(study, timeout=90)
        hone.check_exact_budget(study, [4, 2])


def test_several_workers_killed_at_once_lose_nothing(postgres_url: str, tmp_path: Path) -> None:
    with cluster(postgres_url, tmp_path, HONE_MAX_RETRIES="5") as hone:
        hone.start_api()
        study = hone.create_study(python_study("killed-workers", "steady", [6, 2]))
        workers = [hone.start_worker() for _ in range(3)]
        hone.wait_running(study, at_least=3)
        for worker in workers:
            worker.signal_group(signal.SIGKILL)
        for worker in workers:
            worker.wait(10)
        hone.start_worker(slots=2)
        hone.wait_completed(study, timeout=120)
        hone.check_exact_budget(study, [6, 2])


def test_the_api_killed_mid_request_recovers_and_loses_nothing(postgres_url: str, tmp_path: Path) -> None:
    with cluster(postgres_url, tmp_path, HONE_MAX_RETRIES="5") as hone:
        api = hone.start_api()
        study = hone.create_study(python_study("killed-api", "instant", [30, 8]))
        hone.start_worker(slots=2)
        hone.start_worker(slots=2)
        # Quick trials keep four workers asking; a SIGKILL lands on requests in flight.
        for _ in range(2):
            while hone.sql("SELECT count(*) FROM hone_trials WHERE study_id = :s", s=study)[0][0] < 8:
                time.sleep(0.05)
            api.signal_group(signal.SIGKILL)
            api.wait(10)
            time.sleep(0.5)  # workers meet a dead port and back off
            api = hone.start_api()
        hone.wait_completed(study, timeout=120)
        hone.check_exact_budget(study, [30, 8])
        assert all(worker.alive() for worker in hone.workers), "a worker gave up while the API was down"


@pytest.mark.long  # CI: tests/chaos/test_worker_signals.py covers SIGSTOP/SIGCONT on both databases
def test_a_worker_stopped_past_its_lease_gets_409_after_sigcont_and_the_trial_counts_once(
    postgres_url: str, tmp_path: Path
) -> None:
    with cluster(postgres_url, tmp_path, HONE_MAX_RETRIES="5") as hone:
        hone.start_api()
        study = hone.create_study(python_study("stopped-worker", "steady", [3]))
        frozen_worker = hone.start_worker()
        number, worker_id, lease_id = hone.wait_running(study)[0]
        frozen_worker.signal_group(signal.SIGSTOP)
        hone.start_worker()
        # The frozen lease is reaped and its configuration re-run by the other worker.
        deadline = time.monotonic() + 60
        while hone.sql("SELECT state FROM hone_trials WHERE lease_id = :l", l=lease_id)[0][0] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        hone.wait_completed(study, timeout=90)
        frozen_worker.signal_group(signal.SIGCONT)
        log = tmp_path / "worker-0.log"
        deadline = time.monotonic() + 30
        while "refused" not in log.read_text() and "lease lost" not in log.read_text():
            assert time.monotonic() < deadline, hone.logs()
            time.sleep(0.2)
        time.sleep(1)  # let a late result, if any got through, land before counting
        assert frozen_worker.alive(), "the woken worker died instead of moving on"
        hone.check_exact_budget(study, [3])
        config = hone.sql(
            "SELECT state FROM hone_trials WHERE study_id = :s AND config_number = "
            "(SELECT config_number FROM hone_trials WHERE lease_id = :l) ORDER BY attempt",
            s=study,
            l=lease_id,
        )
        assert [row[0] for row in config] == ["failed", "complete"]


def test_sigterm_to_everything_at_once_leaves_nothing_running_after_restart(
    postgres_url: str, tmp_path: Path
) -> None:
    with cluster(postgres_url, tmp_path, HONE_MAX_RETRIES="5") as hone:
        api = hone.start_api()
        study = hone.create_study(python_study("docker-stop", "steady", [6]))
        workers = [hone.start_worker() for _ in range(2)]
        hone.wait_running(study, at_least=2)
        stopped_at = time.monotonic()
        for process in [api, *workers]:  # `docker stop` of the whole stack
            process.signal_group(signal.SIGTERM)
        # uvicorn re-raises SIGTERM once it has shut down cleanly; workers exit 0.
        assert api.wait(30) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in (tmp_path / "api.log").read_text()
        assert [worker.wait(30) for worker in workers] == [0, 0]
        assert time.monotonic() - stopped_at < 30
        hone.workers.clear()
        hone.start_api()
        hone.start_worker()
        hone.wait_completed(study, timeout=90)
        hone.check_exact_budget(study, [6])
