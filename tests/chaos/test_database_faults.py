"""Database faults: PostgreSQL crashes and comes back under load; a cold start has no schema race."""

from __future__ import annotations

import re
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.chaos.cluster import cluster, python_study
from tests.chaos.postgres_server import PostgresServer
from tests.integration.processes import ADMIN_TOKEN

pytestmark = pytest.mark.slow
OUTAGE_S = 4.0  # longer than the grace period: leases run out while the database is away


def test_postgresql_crashing_under_four_workers_gives_503_and_loses_nothing(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.create_database(f"hone_{uuid.uuid4().hex[:8]}")
    with cluster(url, tmp_path, HONE_MAX_RETRIES="5") as hone:
        hone.start_api()
        study = hone.create_study(python_study("database-crash", "steady", [12, 4]))
        for _ in range(4):
            hone.start_worker()
        hone.wait_running(study, at_least=3)

        postgres_server.crash()
        answers: list[httpx.Response] = []
        outage_ends = time.monotonic() + OUTAGE_S
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        while time.monotonic() < outage_ends:
            answers.append(httpx.get(f"{hone.url}/api/v1/studies/{study}", headers=auth, timeout=10))
            answers.append(
                httpx.post(f"{hone.url}/api/v1/leases", headers=auth, json={"worker": "probe"}, timeout=10)
            )
            time.sleep(0.2)
        postgres_server.start()

        statuses = {response.status_code for response in answers}
        assert statuses == {503}, statuses
        assert all(int(response.headers["Retry-After"]) > 0 for response in answers)
        assert hone.api is not None and hone.api.alive()
        assert all(worker.alive() for worker in hone.workers), "a worker gave up during the outage"

        hone.wait_completed(study, timeout=120)
        hone.check_exact_budget(study, [12, 4])
        access_log = (tmp_path / "api.log").read_text()
        assert not re.search(r'" 5\d\d (?!Service Unavailable)', access_log), "a 5xx other than 503"


def test_a_cold_start_of_the_api_and_eight_workers_on_an_empty_database_migrates_first(
    postgres_url: str, tmp_path: Path
) -> None:
    with cluster(postgres_url, tmp_path, upgrade=False, HONE_MAX_RETRIES="5") as hone:
        # Everything at once, on an empty database, before any migration.
        workers = [hone.start_worker(slots=2) for _ in range(4)]
        early_api = hone.start_api(wait=False)
        assert early_api.wait(60) == 2
        assert "run `hone db upgrade` first" in (tmp_path / "api.log").read_text()
        assert hone.sql("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'") == [
            (0,)
        ]

        hone.upgrade()  # compose's one-shot `migrate` service
        hone.start_api()
        study = hone.create_study(python_study("cold-start", "instant", [16, 8]))
        hone.wait_completed(study, timeout=120)
        hone.check_exact_budget(study, [16, 8])
        assert all(worker.alive() for worker in workers), "a worker gave up before the API came up"
        for worker in workers:
            worker.signal_group(signal.SIGTERM)
        assert [worker.wait(30) for worker in workers] == [0, 0, 0, 0]
