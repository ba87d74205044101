"""The compose stack for real: the project's image, `docker compose` with the README's
commands (CPU profile), a study run to the end through the API, the dashboard reading it,
the stack restarted with its data, and a worker stopped with SIGTERM mid-trial giving its
trial back. Run by `make test-compose` (tests/compose/run.sh starts the engine, provides the
base images and builds the image first); not part of `make test`.

The project is copied to a temporary folder and driven there exactly as a user would:
`cp .env.example .env`, the secrets filled in, the README's commands.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.processes import REPO, free_port

# Bringing the stack up builds (from cache, normally) and waits for health checks.
pytestmark = [pytest.mark.compose, pytest.mark.timeout(900)]

PROJECT = "honecomposetest"
# The README's CPU command (section "Run it on a GPU box: docker compose"); TORCH_INDEX comes
# from the environment (run.sh points it at the CPU wheels).
UP = ["--profile", "cpu", "up", "-d", "--build", "--scale", "worker=0"]
DOWN = ["--profile", "cpu", "down"]
STUDY: dict[str, Any] = {
    "name": "compose-digits",
    "objective": {"trainer": "mlp", "dataset": "digits", "max_epochs": 3},
    "space": {
        "lr": {"type": "float", "low": 1e-3, "high": 1e-1, "scale": "log"},
        "hidden_units": {"type": "int", "low": 8, "high": 32},
    },
    "sampler": {"type": "random", "seed": 1},
    "pruner": {"type": "none"},
    "rounds": [{"trials": 3}],
}
# One trial that cannot end on its own while the test runs (a digits epoch takes
# milliseconds, so a few hundred could be over before the signal): it is stopped mid-way.
LONG: dict[str, Any] = {
    **STUDY,
    "name": "compose-sigterm",
    "objective": {**STUDY["objective"], "max_epochs": 100_000},
}
LONG["rounds"] = [{"trials": 1}]


def compose_command() -> list[str]:
    """`docker compose` (v2) where the plugin is installed, else `docker-compose` (v1)."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0:
        return ["docker", "compose"]
    found = shutil.which("docker-compose")
    if found is None:
        pytest.fail("neither `docker compose` nor `docker-compose` is installed: run `make test-compose`")
    return [found]


@dataclass
class Compose:
    folder: Path
    command: list[str]
    env: dict[str, str]
    admin: str
    api: str
    dashboard: str

    def __call__(self, *args: str, timeout: float = 600, check: bool = True, **env: str) -> str:
        result = subprocess.run(
            [*self.command, *args],
            cwd=self.folder,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
                f"\n--- logs ---\n{self.logs()}"
            )
        return result.stdout

    def logs(self) -> str:
        result = subprocess.run(
            [*self.command, "--profile", "cpu", "logs", "--no-color", "--tail", "40"],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return result.stdout[-12000:]

    def get(self, path: str) -> Any:
        response = httpx.get(
            f"{self.api}/api/v1{path}", headers={"Authorization": f"Bearer {self.admin}"}, timeout=10
        )
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any) -> Any:
        response = httpx.post(
            f"{self.api}/api/v1{path}",
            headers={"Authorization": f"Bearer {self.admin}"},
            json=body,
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return response.json()

    def wait(self, condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = condition()
                if value:
                    return value
            except httpx.HTTPError as error:  # the API is restarting
                last = error
            time.sleep(1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what} ({last})\n{self.logs()}")

    def container(self, service: str) -> str:
        ids = self("ps", "-q", service).split()
        assert len(ids) == 1, ids
        return ids[0]


def copy_project(target: Path) -> None:
    """The files of the checkout (tracked and new, not ignored), as a user's clone has them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def fill_env(folder: Path, values: dict[str, str]) -> None:
    """`cp .env.example .env` and fill in the blanks, as the README says."""
    lines = []
    for line in (folder / ".env.example").read_text().splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={values.pop(key)}" if not line.startswith("#") and key in values else line)
    lines.extend(f"{key}={value}" for key, value in values.items())
    (folder / ".env").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compose]:
    if "TORCH_INDEX" not in os.environ or "HONE_IMAGE_TAG" not in os.environ:
        pytest.skip("run these tests with `make test-compose` (tests/compose/run.sh sets the image up)")
    folder = tmp_path_factory.mktemp("compose") / "hone"
    folder.mkdir()
    copy_project(folder)
    api_port, dashboard_port = free_port(), free_port()
    admin = secrets.token_hex(32)  # openssl rand -hex 32, as .env.example says
    fill_env(
        folder,
        {
            "POSTGRES_PASSWORD": secrets.token_hex(32),
            "HONE_ADMIN_TOKEN": admin,
            "HONE_WORKER_TOKEN": secrets.token_hex(32),
            "HONE_API_PORT": str(api_port),
            "HONE_DASHBOARD_PORT": str(dashboard_port),
            "HONE_IMAGE_TAG": os.environ["HONE_IMAGE_TAG"],
            # Two API processes behind the one port: everything below goes through both.
            "HONE_API_WORKERS": "2",
        },
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HONE_", "POSTGRES_"))}
    env["COMPOSE_PROJECT_NAME"] = PROJECT
    compose = Compose(
        folder,
        compose_command(),
        env,
        admin,
        f"http://127.0.0.1:{api_port}",
        f"http://127.0.0.1:{dashboard_port}",
    )
    compose("--profile", "cpu", "down", "-v", "--remove-orphans", check=False)  # a run that died
    try:
        compose(*UP)
        compose.wait(
            lambda: httpx.get(f"{compose.api}/readyz", timeout=5).status_code == 200,
            timeout=180,
            what="the API",
        )
        yield compose
    finally:
        compose("--profile", "cpu", "down", "-v", "--remove-orphans", "--timeout", "60", check=False)


@pytest.fixture(scope="module")
def finished(stack: Compose) -> dict[str, Any]:
    """A study created through the API and run to the end by the stack's CPU worker."""
    study = stack.post("/studies", STUDY)
    return dict(
        stack.wait(
            lambda: (s := stack.get(f"/studies/{study['id']}"))["status"] == "completed" and s,
            timeout=300,
            what="the study to complete",
        )
    )


def test_a_study_runs_to_the_end_through_the_api(stack: Compose, finished: dict[str, Any]) -> None:
    trials = stack.get(f"/studies/{finished['id']}/trials")["items"]
    assert len(trials) == 3
    assert {trial["state"] for trial in trials} == {"complete"}
    assert all(trial["value"] is not None for trial in trials)
    # The worker came in with the bootstrap worker token (HONE_WORKER_TOKEN), nothing else.
    assert "refuses this worker's token" not in stack("--profile", "cpu", "logs", "--no-color", "worker-cpu")


def test_the_api_serves_hone_s_page_from_the_image_and_prints_its_url(stack: Compose) -> None:
    assert "hone: page http://localhost:8000/" in stack("--profile", "cpu", "logs", "--no-color", "api")
    page = httpx.get(f"{stack.api}/", timeout=10)
    assert page.status_code == 200 and 'src="web/app.js"' in page.text, page.text[:300]
    assert httpx.get(f"{stack.api}/web/study.js", timeout=10).status_code == 200


def test_the_dashboard_reads_the_study(stack: Compose, finished: dict[str, Any]) -> None:
    def listed() -> Any:
        response = httpx.get(f"{stack.dashboard}/api/studies", timeout=10)
        return response.status_code == 200 and response.json()["study_summaries"]

    summaries = stack.wait(listed, timeout=120, what="the dashboard")
    assert STUDY["name"] in {summary["study_name"] for summary in summaries}


def test_a_worker_token_is_made_with_compose_while_the_variable_is_empty(stack: Compose) -> None:
    # The README's way to a revocable worker token, before HONE_WORKER_TOKEN has a value.
    # (The environment wins over .env for compose's own variables.)
    made = stack(
        "run", "--rm", "migrate", "hone", "token", "create", "--role", "worker", HONE_WORKER_TOKEN=""
    )
    token = made.strip().splitlines()[-1]
    assert token.startswith("hone_"), made
    as_worker = httpx.get(
        f"{stack.api}/api/v1/workers", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert as_worker.status_code == 200, as_worker.text


def test_the_stack_restarts_and_keeps_the_study(stack: Compose, finished: dict[str, Any]) -> None:
    stack(*DOWN)  # the volume stays
    assert not stack("ps", "-q").split()
    stack(*UP)
    study = stack.wait(
        lambda: stack.get(f"/studies/{finished['id']}"), timeout=180, what="the API after the restart"
    )
    assert study["name"] == STUDY["name"]
    assert study["status"] == "completed"
    assert study["best"] == finished["best"]


def test_sigterm_mid_trial_gives_the_trial_back_and_it_is_queued_again(
    stack: Compose, finished: dict[str, Any]
) -> None:
    study = stack.post("/studies", LONG)
    trials = f"/studies/{study['id']}/trials"
    running = stack.wait(
        lambda: [
            t for t in stack.get(trials)["items"] if t["state"] == "running" and (t["last_step"] or 0) >= 2
        ],
        timeout=180,
        what="a trial in its epochs",
    )[0]
    worker = stack.container("worker-cpu")

    stack("--profile", "cpu", "stop", "worker-cpu")  # SIGTERM, as `docker stop` sends
    state = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.ExitCode}}", worker], capture_output=True, text=True, check=True
    )
    assert state.stdout.strip() == "0", stack.logs()  # it gave the trial back and left in time
    given_back = stack.get(f"{trials}/{running['number']}")
    assert given_back["state"] != "running"
    assert given_back["cause"] == "shutdown"
    assert given_back["last_step"] < LONG["objective"]["max_epochs"]

    stack("--profile", "cpu", "start", "worker-cpu")
    retry = stack.wait(
        lambda: [
            t
            for t in stack.get(trials)["items"]
            if t["config_number"] == running["config_number"] and t["attempt"] == 1
        ],
        timeout=180,
        what="the configuration leased again",
    )[0]
    assert retry["params"] == running["params"]
