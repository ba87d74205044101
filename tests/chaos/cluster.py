"""A hone deployment made of real processes: one ``hone api`` and any number of ``hone worker``
processes on one database, each in its own process group so a test can SIGKILL, SIGSTOP
or SIGTERM a whole worker (supervisor and slots) the way a machine or container dies.

Timings are shrunk (grace period 2 s, heartbeats every 0.3 s) so recovery is seconds, not
minutes; :func:`check_exact_budget` states what "nothing lost, nothing counted twice" means.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.integration.processes import ADMIN_TOKEN, REPO, clean_env, free_port, hone, run_hone, wait_http

GRACE_PERIOD = 2.0
TIMINGS = {"HONE_GRACE_PERIOD": "2", "HONE_HEARTBEAT_INTERVAL": "0.3", "HONE_REAPER_INTERVAL": "0.3"}


def python_study(name: str, entrypoint: str, trials: list[int], **changes: Any) -> dict[str, Any]:
    """A study of a ``tests.chaos.objectives`` function over one parameter ``x``."""
    return {
        "name": name,
        "objective": {
            "trainer": "python",
            "entrypoint": f"tests.chaos.objectives:{entrypoint}",
            "metric": "loss",
            "direction": "minimize",
        },
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "sampler": {"type": "random", "seed": 7},
        "pruner": {"type": "none"},
        "rounds": [{"trials": n} for n in trials],
        **changes,
    }


@dataclass
class Proc:
    """A process in its own session (process group), with its output in ``log``."""

    argv: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, signum: int) -> None:
        if self.popen is not None:
            with suppress(ProcessLookupError):
                os.killpg(self.pid, signum)

    def wait(self, timeout: float) -> int:
        assert self.popen is not None
        return self.popen.wait(timeout)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the group, then SIGKILL it if it overstays; always reaps the process."""
        if self.popen is None:
            return
        if self.alive():
            self.signal_group(signal.SIGCONT)
            self.signal_group(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        self.signal_group(signal.SIGKILL)  # slots left behind by a killed supervisor too
        self.popen.wait(10)


@dataclass
class Cluster:
    """The API and workers of one test, on ``database_url``; everything is stopped by :func:`cluster`."""

    database_url: str
    workdir: Path
    settings: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    api: Proc | None = None
    workers: list[Proc] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, **extra: str) -> dict[str, str]:
        base = {"HONE_DATABASE_URL": self.database_url, "HONE_ADMIN_TOKEN": ADMIN_TOKEN}
        return clean_env(**{**base, **TIMINGS, **self.settings, **extra})

    def upgrade(self) -> None:
        done = run_hone("db", "upgrade", env=self.env(), cwd=REPO)
        assert done.returncode == 0, done.stderr

    def start_api(self, *, wait: bool = True, processes: int = 1) -> Proc:
        argv = hone("api", "--host", "127.0.0.1", "--port", str(self.port))
        if processes > 1:
            argv += ["--workers", str(processes)]
        self.api = Proc(argv, self.env(), self.workdir / "api.log").start()
        if wait:
            # Each process imports the app on its own, all at once: on a loaded 2-core box
            # four of them once took over a minute to answer (CI, beside a compose test).
            wait_http(f"{self.url}/readyz", process=self.api.popen, timeout=60 + 30 * (processes - 1))
        return self.api

    def start_worker(self, *, slots: int = 1, **extra: str) -> Proc:
        argv = hone("worker", "--api", self.url, "--devices", "cpu", "--trials-per-device", str(slots))
        argv += ["--stop-timeout", "5"]
        log = self.workdir / f"worker-{len(self.workers)}.log"
        worker = Proc(argv, self.env(HONE_TOKEN=ADMIN_TOKEN, **extra), log).start()
        self.workers.append(worker)
        return worker

    def api_processes(self) -> list[int]:
        """The pids of the processes serving the API: uvicorn's children under ``--workers``,
        else the API process itself."""
        assert self.api is not None
        children = Path(f"/proc/{self.api.pid}/task/{self.api.pid}/children")
        pids = [int(pid) for pid in children.read_text().split()] if children.exists() else []
        # `--workers` also starts multiprocessing's resource tracker, which serves nothing.
        serving = [pid for pid in pids if b"resource_tracker" not in _cmdline(pid)]
        return serving or [self.api.pid]

    # -- the REST API ----------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx.request(method, f"{self.url}/api/v1{path}", headers=headers, timeout=30, **kwargs)

    def create_study(self, spec: Mapping[str, Any]) -> int:
        response = self.request("POST", "/studies", json=dict(spec))
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    def study(self, study_id: int) -> dict[str, Any]:
        response = self.request("GET", f"/studies/{study_id}")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def wait_completed(self, study_id: int, *, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        summary: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                summary = self.study(study_id)
            except httpx.HTTPError:
                summary = {"status": "api unreachable"}
            if summary.get("status") == "completed":
                return summary
            time.sleep(0.3)
        raise AssertionError(f"study {study_id} did not complete within {timeout}s: {summary}\n{self.logs()}")

    def logs(self, tail: int = 3000) -> str:
        parts = []
        for path in sorted(self.workdir.glob("*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-tail:]}")
        return "\n".join(parts)

    # -- the database ----------------------------------------------------------------------

    def sql(self, query: str, **params: Any) -> list[Any]:
        engine = create_engine(self.database_url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                return list(connection.execute(text(query), params))
        finally:
            engine.dispose()

    def running_trials(self, study_id: int) -> list[Any]:
        return self.sql(
            "SELECT number, worker_id, lease_id FROM hone_trials WHERE study_id = :s AND state = 'running'",
            s=study_id,
        )

    def wait_running(self, study_id: int, *, at_least: int = 1, timeout: float = 60) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.running_trials(study_id)
            if len(rows) >= at_least:
                return rows
            time.sleep(0.05)
        raise AssertionError(f"fewer than {at_least} trials running within {timeout}s\n{self.logs()}")

    def worker_of(self, worker_id: str) -> Proc:
        """The worker process whose slot leased under ``worker_id`` (``host-<pid>-<slot>``)."""
        pid = int(worker_id.rsplit("-", 2)[-2])
        return next(w for w in self.workers if w.pid == pid)

    def check_exact_budget(
        self, study_id: int, budgets: list[int], *, settle: float = GRACE_PERIOD + 3
    ) -> None:
        """Nothing lost, nothing counted twice, nothing left running.

        Every round started exactly its budget of configurations; every configuration
        ended exactly once in a final state (complete, pruned, or failed with no retry
        after it); no hone trial is running and Optuna holds no RUNNING or WAITING trial
        of the study (orphans are reaped within the grace period: waited for up to
        ``settle`` seconds)."""
        per_round = self.sql(
            "SELECT round, count(*) FROM hone_trials WHERE study_id = :s AND attempt = 0 GROUP BY round ORDER BY round",
            s=study_id,
        )
        assert [tuple(row) for row in per_round] == [(i + 1, n) for i, n in enumerate(budgets)], per_round
        finals = self.sql(
            "SELECT config_number, count(*) FROM hone_trials WHERE study_id = :s AND state IN ('complete', 'pruned') "
            "GROUP BY config_number HAVING count(*) > 1",
            s=study_id,
        )
        assert finals == [], f"configurations counted twice: {finals}"
        complete = self.sql(
            "SELECT count(*) FROM hone_trials WHERE study_id = :s AND state = 'complete'", s=study_id
        )[0][0]
        configs = self.sql(
            "SELECT count(DISTINCT config_number) FROM hone_trials WHERE study_id = :s", s=study_id
        )[0][0]
        assert configs == sum(budgets)
        others = self.sql(
            "SELECT number, config_number, attempt, state, cause, reason FROM hone_trials "
            "WHERE study_id = :s AND state <> 'complete' ORDER BY number",
            s=study_id,
        )
        assert complete == sum(budgets), (
            f"{complete} of {sum(budgets)} configurations complete; the other trials:\n"
            + "\n".join(str(tuple(row)) for row in others)
            + f"\n{self.logs()}"
        )
        assert self.running_trials(study_id) == []
        deadline = time.monotonic() + settle
        while True:
            open_optuna = self.sql(
                "SELECT number, state FROM trials WHERE study_id = :s AND state IN ('RUNNING', 'WAITING')",
                s=study_id,
            )
            if not open_optuna or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert open_optuna == [], f"Optuna trials left open: {open_optuna}"
        optuna_complete = self.sql(
            "SELECT count(*) FROM trials WHERE study_id = :s AND state = 'COMPLETE'", s=study_id
        )[0][0]
        assert optuna_complete == complete


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@contextmanager
def cluster(database_url: str, workdir: Path, *, upgrade: bool = True, **settings: str) -> Iterator[Cluster]:
    """A :class:`Cluster` on an upgraded database (unless ``upgrade=False``); every process
    is stopped at the end."""
    deployment = Cluster(database_url, workdir, settings=dict(settings))
    if upgrade:
        deployment.upgrade()
    try:
        yield deployment
    finally:
        for worker in deployment.workers:
            worker.stop(timeout=10)
        if deployment.api is not None:
            deployment.api.stop(timeout=10)
