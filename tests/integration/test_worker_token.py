"""Worker tokens as compose hands them out: the API's bootstrap worker token
(``HONE_WORKER_TOKEN``), and a worker whose token is refused waiting, saying why, and
trying again, instead of exiting into a restart loop. Real API and worker processes on
a real SQLite file.
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.integration.processes import TINY_STUDY, hone, wait_http
from tests.integration.stack import kill_group, stack

pytestmark = pytest.mark.slow

WORKER_TOKEN = "bootstrap-worker-token-0123456789abcdef"
REFUSED = "the API refuses this worker's token (401)"


def test_the_bootstrap_worker_token_runs_workers_and_only_that(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hone.db'}"
    with stack(url, tmp_path, worker_token=WORKER_TOKEN) as running:
        as_worker = {"Authorization": f"Bearer {WORKER_TOKEN}"}
        # The worker role, not more: it may not create studies.
        refused = httpx.post(f"{running.api}/api/v1/studies", json=TINY_STUDY, headers=as_worker, timeout=30)
        assert refused.status_code == 403, refused.text
        study = running.post("/studies", TINY_STUDY)
        running.start(
            hone("worker", "--api", running.api, "--token", WORKER_TOKEN, "--devices", "cpu"), "worker"
        )
        running.wait_status(study["id"], "completed", timeout=240)
        assert REFUSED not in running.log("worker")


def test_a_refused_worker_waits_says_why_and_starts_once_its_token_is_known(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hone.db'}"
    with stack(url, tmp_path) as running:
        study = running.post("/studies", TINY_STUDY)
        worker = running.start(
            hone(
                "worker",
                "--api",
                running.api,
                "--token",
                WORKER_TOKEN,
                "--devices",
                "cpu",
                "--auth-retry",
                "1",
            ),
            "worker",
        )
        # Refused, it says so and asks again, slowly, rather than exiting.
        running.wait(lambda: running.log("worker").count(REFUSED) >= 3, timeout=60, what="three refusals")
        assert worker.poll() is None, running.log("worker")
        assert "HONE_WORKER_TOKEN" in running.log("worker")
        assert running.get(f"/studies/{study['id']}")["status"] != "completed"

        # The operator fixes the API's settings and restarts it: the same worker process,
        # never restarted, picks the study up.
        api = running.processes[0]
        kill_group(api, signal.SIGTERM)
        api.wait(30)
        port = running.api.rsplit(":", 1)[1]
        restarted = running.start(hone("api", "--port", port), "api2", HONE_WORKER_TOKEN=WORKER_TOKEN)
        wait_http(f"{running.api}/readyz", process=restarted, timeout=60)
        running.wait_status(study["id"], "completed", timeout=240)
        assert worker.poll() is None

        kill_group(worker, signal.SIGTERM)
        assert worker.wait(60) == 0


def test_a_worker_without_a_token_waits_instead_of_exiting(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hone.db'}"
    with stack(url, tmp_path) as running:
        # What compose passes when HONE_WORKER_TOKEN is left empty in .env.
        worker = running.start(
            hone("worker", "--api", running.api, "--devices", "cpu", "--auth-retry", "1"),
            "worker",
            HONE_TOKEN="",
        )
        running.wait(lambda: running.log("worker").count(REFUSED) >= 2, timeout=60, what="two refusals")
        assert "no token" in running.log("worker")
        assert worker.poll() is None
        kill_group(worker, signal.SIGTERM)
        assert worker.wait(60) == 0
