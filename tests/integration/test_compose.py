"""docker-compose.yml: validated by `docker-compose config`, and every service's command run
natively — with the compose file's own environment, pointed at the test PostgreSQL and free
local ports — so what compose starts is what was tested.

No Docker engine runs here; Debian's `docker-compose` package only parses and resolves the
file. It is installed by `.ci/run`; without it these tests fail rather than skip.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.processes import (
    ADMIN_TOKEN,
    REPO,
    TINY_STUDY,
    clean_env,
    free_port,
    running,
    wait_for_status,
    wait_http,
)

pytestmark = pytest.mark.slow

SECRETS = {
    "POSTGRES_PASSWORD": "compose-test-password-0123456789",
    "HONE_ADMIN_TOKEN": ADMIN_TOKEN,
    "HONE_WORKER_TOKEN": "compose-test-worker-token-0123456789",
}


def compose(*args: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("docker-compose")
    if executable is None:
        pytest.fail("docker-compose is not installed (apt-get install docker-compose; .ci/run does it)")
    env = {key: value for key, value in clean_env().items() if key not in SECRETS}
    return subprocess.run(
        [
            executable,
            "--project-directory",
            str(REPO),
            "-f",
            str(REPO / "docker-compose.yml"),
            "--env-file",
            str(env_file),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write_env(path: Path, values: Mapping[str, str]) -> Path:
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return path


@pytest.fixture
def resolved(tmp_path: Path) -> dict[str, Any]:
    """The compose file as `docker-compose config` resolves it with the test secrets."""
    result = compose("config", env_file=write_env(tmp_path / "test.env", SECRETS))
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


@pytest.mark.parametrize("missing", ["POSTGRES_PASSWORD", "HONE_ADMIN_TOKEN"])
def test_a_missing_secret_fails_loudly_and_names_itself(tmp_path: Path, missing: str) -> None:
    values = {key: value for key, value in SECRETS.items() if key != missing}
    result = compose("config", "-q", env_file=write_env(tmp_path / "partial.env", values))
    assert result.returncode != 0
    assert missing in result.stderr


def test_the_worker_token_may_be_empty_so_one_can_be_made_with_compose(tmp_path: Path) -> None:
    # `docker compose run --rm migrate hone token create --role worker` resolves the whole
    # file first: a required HONE_WORKER_TOKEN would refuse the command that makes one.
    values = {**SECRETS, "HONE_WORKER_TOKEN": ""}
    result = compose("config", env_file=write_env(tmp_path / "no-worker-token.env", values))
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert services["worker-cpu"]["environment"]["HONE_TOKEN"] in ("", None)


def test_the_api_learns_the_worker_token_and_the_database_is_checked_over_tcp(
    resolved: dict[str, Any],
) -> None:
    services = resolved["services"]
    assert services["api"]["environment"]["HONE_WORKER_TOKEN"] == SECRETS["HONE_WORKER_TOKEN"]
    assert services["worker"]["environment"]["HONE_TOKEN"] == SECRETS["HONE_WORKER_TOKEN"]
    # The first-start setup server of the postgres image answers on its socket only.
    assert "-h 127.0.0.1" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "--wait" in services["migrate"]["command"]
    command = services["api"]["command"]
    assert command[command.index("--workers") + 1] == "1"  # HONE_API_WORKERS, default 1


def test_the_file_wires_the_services_in_order(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert set(services) >= {"postgres", "migrate", "api", "worker", "worker-cpu", "dashboard"}
    assert services["postgres"]["healthcheck"]["test"]
    assert any(str(volume).startswith("pgdata:") for volume in services["postgres"]["volumes"])
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "dashboard"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["worker"]["depends_on"]["api"]["condition"] == "service_healthy"
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert services["worker-cpu"]["profiles"] == ["cpu"]
    # The dashboard has no login: published on loopback only.
    assert all(str(port).startswith("127.0.0.1:") for port in services["dashboard"]["ports"])
    # Workers talk to the API only; they never hold database credentials.
    for name in ("worker", "worker-cpu"):
        assert "HONE_DATABASE_URL" not in services[name]["environment"]
        assert "container_name" not in services[name]  # `--scale worker=N` needs this


class Native:
    """Compose services turned into local processes: same argv and environment, with the
    compose network's names and ports mapped to the test PostgreSQL and free ports."""

    def __init__(self, config: dict[str, Any], database_url: str) -> None:
        self.services = config["services"]
        self.database_url = database_url
        self.ports = {"8000": str(free_port()), "8080": str(free_port())}

    def rewrite(self, text: str) -> str:
        text = text.replace("http://api:8000", f"http://127.0.0.1:{self.ports['8000']}").replace(
            "0.0.0.0", "127.0.0.1"
        )
        for container_port, local_port in self.ports.items():
            text = text.replace(f"127.0.0.1:{container_port}", f"127.0.0.1:{local_port}")
        return text

    def argv(self, words: list[str]) -> list[str]:
        out = [self.rewrite(str(word)) for word in words]
        for index, word in enumerate(out[:-1]):
            if word == "--port":
                out[index + 1] = self.ports[out[index + 1]]
        if out[0] == "hone":
            return [sys.executable, "-m", "hone", *out[1:]]
        if out[0] == "python":
            return [sys.executable, *out[1:]]
        return out

    def command(self, name: str) -> list[str]:
        return self.argv(self.services[name]["command"])

    def healthcheck(self, name: str) -> list[str]:
        test = self.services[name]["healthcheck"]["test"]
        assert test[0] == "CMD", test
        return self.argv(test[1:])

    def env(self, name: str) -> dict[str, str]:
        env = clean_env()
        for key, value in (self.services[name].get("environment") or {}).items():
            env[key] = self.database_url if key == "HONE_DATABASE_URL" else self.rewrite(str(value))
        return env


@pytest.mark.postgres
def test_every_compose_service_command_runs_natively(
    resolved: dict[str, Any], postgres_url: str, tmp_path: Path
) -> None:
    native = Native(resolved, postgres_url)
    assert resolved["services"]["migrate"]["environment"]["HONE_DATABASE_URL"].startswith(
        "postgresql+psycopg://hone:"
    )

    migrate = subprocess.run(
        native.command("migrate"),
        env=native.env("migrate"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr
    again = subprocess.run(
        native.command("migrate"),
        env=native.env("migrate"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr

    # The worker token as .env.example says to make one: `hone token create` with migrate's setup.
    made = subprocess.run(
        [*native.argv(["hone", "token", "create", "--role", "worker"])],
        env=native.env("migrate"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    worker_token = made.stdout.strip()
    with_worker_token = compose(
        "config", env_file=write_env(tmp_path / "worker.env", {**SECRETS, "HONE_WORKER_TOKEN": worker_token})
    )
    assert with_worker_token.returncode == 0, with_worker_token.stderr
    worker = Native(yaml.safe_load(with_worker_token.stdout), postgres_url)
    worker.ports = native.ports
    assert worker.env("worker")["HONE_TOKEN"] == worker_token

    api_url = f"http://127.0.0.1:{native.ports['8000']}"
    dashboard_url = f"http://127.0.0.1:{native.ports['8080']}"
    with running(native.command("api"), env=native.env("api"), log=tmp_path / "api.log") as api:
        wait_http(f"{api_url}/readyz", process=api)
        health = subprocess.run(
            native.healthcheck("api"), capture_output=True, text=True, timeout=30, check=False
        )
        assert health.returncode == 0, health.stderr

        token = resolved["services"]["api"]["environment"]["HONE_ADMIN_TOKEN"]
        created = httpx.post(
            f"{api_url}/api/v1/studies",
            json=TINY_STUDY,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        study_id = created.json()["id"]

        with running(worker.command("worker"), env=worker.env("worker"), log=tmp_path / "worker.log"):
            wait_for_status(api_url, study_id, {"completed"}, token=token, timeout=240)

        with running(
            native.command("dashboard"), env=native.env("dashboard"), log=tmp_path / "dashboard.log"
        ) as dashboard:
            studies = wait_http(f"{dashboard_url}/api/studies", process=dashboard).json()
            assert TINY_STUDY["name"] in {s["study_name"] for s in studies["study_summaries"]}
            health = subprocess.run(
                native.healthcheck("dashboard"), capture_output=True, text=True, timeout=30, check=False
            )
            assert health.returncode == 0, health.stderr
