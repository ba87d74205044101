"""hone in one process, for the search benchmarks: the real app and lease protocol.

:class:`LocalService` serves ``create_app`` over a fresh SQLite file through starlette's
TestClient; :meth:`LocalService.run_study` creates a study from a spec and works it as one
worker slot does (lease → run the objective with the worker's own ``run_objective`` →
report every step → complete or prune) until the study completes. So what the benchmarks
measure is hone's real search: spec, sampler in the round's box, narrowing between rounds,
pruner answers on reports.
"""

from __future__ import annotations

import math
import secrets
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from fastapi.testclient import TestClient

from hone.settings import Settings
from protocol import Objective
from service import migrate
from service.app import create_app
from worker.objectives import run_objective

API = "/api/v1"


@dataclass
class StudyRun:
    """What one study did: every configuration's value (None when pruned or failed), in order,
    and the steps (epochs) it reported."""

    study_id: int
    direction: str
    values: list[float | None] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    states: list[str] = field(default_factory=list)

    @property
    def best(self) -> float:
        finite = [v for v in self.values if v is not None]
        if not finite:
            return math.nan
        return min(finite) if self.direction == "minimize" else max(finite)

    def best_so_far(self) -> list[float]:
        """The best complete value after each trial (NaN until the first completes)."""
        out: list[float] = []
        best = math.nan
        for value in self.values:
            if value is not None and (
                math.isnan(best) or (value < best if self.direction == "minimize" else value > best)
            ):
                best = value
            out.append(best)
        return out

    @property
    def total_steps(self) -> int:
        return sum(self.steps)


class LocalService:
    """The hone API over a temporary SQLite database, driven in-process."""

    def __init__(self, **settings: Any) -> None:
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # one line per trial drowns the tables
        self._dir = Path(tempfile.mkdtemp(prefix="hone-bench-"))
        url = f"sqlite:///{self._dir / 'hone.db'}"
        migrate.upgrade(url)
        token = secrets.token_hex(16)
        # ``settings`` override the defaults, e.g. a grace period longer than a slow trial:
        # the loop sends no heartbeats while the objective runs.
        config = Settings(
            _env_file=None,
            database_url=url,
            admin_token=token,
            reaper_interval=3600,
            **settings,
        )
        self.client = TestClient(create_app(config))
        self.client.__enter__()
        self.client.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> LocalService:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.client.post(f"{API}{path}", json=body or {})
        if response.status_code >= 400:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
        return response

    def run_study(
        self,
        spec: dict[str, Any],
        *,
        stop: Callable[[StudyRun], bool] | None = None,
    ) -> StudyRun:
        """Create the study and run its trials one at a time until it completes (or ``stop``
        says enough: then the study is stopped)."""
        created = self._post("/studies", spec).json()
        run = StudyRun(study_id=created["id"], direction=spec["objective"].get("direction", "minimize"))
        worker = f"bench-{run.study_id}"
        while stop is None or not stop(run):
            response = self._post("/leases", {"worker": worker, "studies": [run.study_id]})
            if response.status_code == 204:
                break
            self._run_trial(response.json(), run)
        if stop is not None:
            self._post(f"/studies/{run.study_id}/stop")
        return run

    def _run_trial(self, grant: dict[str, Any], run: StudyRun) -> None:
        lease = grant["lease"]["id"]
        objective = Objective.model_validate(grant["objective"])
        steps = 0

        def report(step: int, value: float, metrics: dict[str, float]) -> bool:
            nonlocal steps
            steps += 1
            return bool(self._post(f"/leases/{lease}/report", {"step": step, "value": value}).json()["prune"])

        try:
            outcome = run_objective(objective, grant["trial"]["params"], device="cpu", report=report)
        except Exception as error:  # a diverged run is a failed trial, as in a worker
            self._post(f"/leases/{lease}/fail", {"reason": str(error)[:200] or "failed"})
            run.values.append(None)
            run.states.append("failed")
            run.steps.append(steps)
            return
        run.steps.append(steps)
        if outcome.stopped:
            self._post(f"/leases/{lease}/prune")
            run.values.append(None)
            run.states.append("pruned")
        else:
            self._post(f"/leases/{lease}/complete", {"value": outcome.value})
            run.values.append(outcome.value)
            run.states.append("complete")
