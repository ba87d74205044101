"""Several API processes (`hone api --workers N`) on one PostgreSQL, 16 worker slots contending.

What one process's lock used to guarantee must hold across processes: every round starts
exactly its budget, ``max_concurrent`` is never exceeded, each configuration completes
once, a failed attempt is retried once, and a process SIGKILLed while it holds a study's
lock (mid-grant; with a TPE study and 16 slots, grants hold the lock most of the time,
results briefly) loses nothing: its transaction rolls back, uvicorn starts another.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from service.db import APPLICATION_NAME
from service.study_locks import STUDY_LOCKS
from tests.chaos.cluster import Cluster, cluster, python_study

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
SUPERVISORS, SLOTS = 4, 4  # 16 slots: 4 worker processes × 4 slot processes
# Production-like lease timings: on a loaded 2-core machine one request can take longer
# than the chaos tests' 2 s grace period, and reaping is not what the budget tests are about.
CALM = {"HONE_GRACE_PERIOD": "30", "HONE_HEARTBEAT_INTERVAL": "2", "HONE_MAX_RETRIES": "5"}


@contextmanager
def most_running(database_url: str, study_id: int) -> Iterator[list[int]]:
    """The largest number of the study's trials seen running at once, sampled from the
    database as fast as it answers while the block runs."""
    most = [0]
    done = threading.Event()
    engine = create_engine(database_url, poolclass=NullPool)
    query = text("SELECT count(*) FROM hone_trials WHERE study_id = :s AND state = 'running'")

    def watch() -> None:
        with engine.connect() as connection:
            while not done.is_set():
                most[0] = max(most[0], int(connection.execute(query, {"s": study_id}).scalar_one()))
                connection.rollback()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield most
    finally:
        done.set()
        watcher.join(10)
        engine.dispose()


def check_one_attempt_each(hone: Cluster, study_id: int) -> None:
    """No attempt of a configuration was granted twice: a failure was retried once."""
    twice = hone.sql(
        "SELECT config_number, attempt, count(*) FROM hone_trials WHERE study_id = :s "
        "GROUP BY config_number, attempt HAVING count(*) > 1",
        s=study_id,
    )
    assert twice == [], f"attempts granted twice: {twice}"


def check_clean_logs(hone: Cluster) -> None:
    api_log = (hone.workdir / "api.log").read_text(errors="replace")
    # Where a person finds the page, printed once by the command whatever the processes.
    assert api_log.count(f"hone: page http://127.0.0.1:{hone.port}/ ") == 1, api_log[:500]
    for trouble in ("deadlock detected", "Traceback", '" 500'):
        assert trouble not in api_log, f"{trouble!r} in the API's log\n{api_log[-3000:]}"


@pytest.mark.parametrize("processes", [2, 4])
def test_api_processes_on_one_postgresql_keep_budgets_and_max_concurrent_exact(
    processes: int, postgres_url: str, tmp_path: Path
) -> None:
    with cluster(postgres_url, tmp_path, **CALM) as hone:
        hone.start_api(processes=processes)
        assert len(hone.api_processes()) == processes
        wide = hone.create_study(python_study("wide", "instant", [40, 20]))
        # Trials of a second (`steady`): instant ones, granted in batches, finished between
        # two looks of the watcher, which then saw none running at all.
        narrow = hone.create_study(python_study("narrow", "steady", [16], max_concurrent=2))
        with most_running(postgres_url, narrow) as most:
            for _ in range(SUPERVISORS):
                hone.start_worker(slots=SLOTS)
            hone.wait_completed(wide, timeout=240)
            hone.wait_completed(narrow, timeout=120)
        assert 1 <= most[0] <= 2, f"max_concurrent 2, yet {most[0]} trials ran at once"
        hone.check_exact_budget(wide, [40, 20])
        hone.check_exact_budget(narrow, [16])
        for study in (wide, narrow):
            check_one_attempt_each(hone, study)
        # /workers reads the database: whichever process answers, the same 16 slots.
        answers = [hone.request("GET", "/workers").json() for _ in range(8)]
        seen = [frozenset(worker["id"] for worker in answer) for answer in answers]
        assert len(set(seen)) == 1 and len(seen[0]) == SUPERVISORS * SLOTS, seen
        # Every process served requests and holds connections of its own.
        names = {row[0] for row in hone.sql("SELECT application_name FROM pg_stat_activity")}
        assert {f"{APPLICATION_NAME}{pid}" for pid in hone.api_processes()} <= names
        check_clean_logs(hone)


def holder_of_a_study_lock(database_url: str, *, timeout: float) -> int:
    """The pid of the API process whose transaction holds a study's lock now."""
    engine = create_engine(database_url, poolclass=NullPool)
    query = text(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.classid = :k AND l.granted AND a.application_name LIKE :name "
        # pg_locks and pg_stat_activity span the cluster: other tests' API processes hold
        # study locks in their own databases at the same time.
        "AND a.datname = current_database()"
    )
    deadline = time.monotonic() + timeout
    try:
        with engine.connect() as connection:
            while time.monotonic() < deadline:
                found = connection.execute(query, {"k": STUDY_LOCKS, "name": f"{APPLICATION_NAME}%"}).first()
                connection.rollback()
                if found is not None:
                    return int(found[0].removeprefix(APPLICATION_NAME))
    finally:
        engine.dispose()
    raise AssertionError(f"no study lock was seen held within {timeout}s")


def test_an_api_process_killed_mid_grant_loses_nothing(postgres_url: str, tmp_path: Path) -> None:
    # TPE: the grant holds its study's lock while Optuna's ask writes on another
    # connection, the widest window to be killed in. Trials of a second (`steady`), so
    # slots hold them while others are granted: results take no study lock while their
    # round has room, and instant trials could end the study before four ran at once.
    with cluster(postgres_url, tmp_path, HONE_GRACE_PERIOD="3", HONE_MAX_RETRIES="5") as hone:
        hone.start_api(processes=2)
        spec = python_study("killed", "steady", [40, 15], sampler={"type": "tpe", "seed": 7})
        study = hone.create_study(spec)
        for _ in range(SUPERVISORS):
            hone.start_worker(slots=SLOTS)
        hone.wait_running(study, at_least=4)
        serving = hone.api_processes()
        victim = holder_of_a_study_lock(postgres_url, timeout=60)
        assert victim in serving
        os.kill(victim, signal.SIGKILL)
        hone.wait_completed(study, timeout=240)
        hone.check_exact_budget(study, [40, 15])
        check_one_attempt_each(hone, study)
        # uvicorn replaced the killed process.
        replaced = hone.api_processes()
        assert victim not in replaced and len(replaced) == 2, replaced
