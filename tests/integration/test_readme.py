"""The README's commands, run as a reader would run them.

Every line of every ``sh`` block in README.md is exercised: `hone` and `curl` lines run
for real, in order, against a real `hone up` stack started the way the README starts it;
lines that need what this machine lacks (a Docker engine, a second host) are checked
against what they name (the Makefile target, the compose service, the example file).
A new line that fits none of the rules fails the test, so the README cannot drift.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hone.settings import get_settings
from tests.integration.processes import REPO, clean_env, free_port, hone, wait_http

README = REPO / "README.md"


def readme_commands() -> list[str]:
    """The command lines of the README's ``sh`` blocks, continuations joined, comments cut."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"\s+#\s.*$", "", line).strip()
            if command:
                commands.append(command)
    return commands


def test_the_readme_opens_with_the_two_commands() -> None:
    assert readme_commands()[:2] == ["make run", "make test"]


def test_make_run_installs_what_running_needs_and_make_test_the_dev_tools(tmp_path: Path) -> None:
    # A fresh clone: no .venv, so `make -n` lists every install step.
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        (tmp_path / name).symlink_to(REPO / name)

    def dry(target: str) -> str:
        done = subprocess.run(["make", "-n", target], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    run = dry("run")
    assert "-e ." in run and ".[dev]" not in run
    assert "-e '.[dev]'" in dry("test")


def test_the_readme_compose_commands_are_those_make_test_compose_runs() -> None:
    from tests.compose.test_stack import DOWN, UP

    commands = readme_commands()
    assert f"TORCH_INDEX=https://download.pytorch.org/whl/cpu docker compose {' '.join(UP)}" in commands
    assert f"docker compose {' '.join(DOWN)}" in commands


def check_without_running(command: str) -> bool:
    """Lines that cannot run here, checked against what they name. False: must run."""
    words = shlex.split(command)
    if words[0] == "make":
        dry = subprocess.run(["make", "-n", *words[1:]], cwd=REPO, capture_output=True, text=True)
        assert dry.returncode == 0, f"{command}: {dry.stderr}"
        return True
    if words[:2] == ["docker", "compose"] or (words[0].startswith("TORCH_INDEX=") and "compose" in words):
        compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
        for word in words:
            if word.startswith("worker="):
                assert "worker" in compose["services"]
        if "--profile" in words:
            profile = words[words.index("--profile") + 1]
            assert any(profile in s.get("profiles", []) for s in compose["services"].values())
        return True
    if words[:2] == ["cp", ".env.example"]:
        assert (REPO / ".env.example").is_file()
        return True
    if words == [".", ".venv/bin/activate"]:
        assert (Path(sys.executable).parent / "activate").is_file() or (REPO / ".venv/bin/activate").is_file()
        return True
    return False


@pytest.mark.slow
def test_every_command_of_the_readme_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port, dashboard_port = free_port(), free_port()
    api = f"http://127.0.0.1:{port}"
    (tmp_path / "examples").symlink_to(REPO / "examples")
    database_url = f"sqlite:///{tmp_path / 'hone-data' / 'hone.db'}"
    log = (tmp_path / "up.log").open("wb")
    # `make run` is `hone db upgrade` + `hone up`, started here on free ports.
    stack = subprocess.Popen(
        hone("up", "--workers", "2", "--port", str(port), "--dashboard-port", str(dashboard_port)),
        env=clean_env(),
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"{api}/readyz", process=stack, timeout=120)
        admin = (tmp_path / "hone-data" / "admin-token").read_text().strip()
        worker_token = ""
        # What the README's placeholders stand for on this machine.
        substitutions = {
            "http://127.0.0.1:8000": api,
            "http://api-host:8000": api,
            "<HONE_ADMIN_TOKEN from .env>": admin,
        }
        bin_dir = str(Path(sys.executable).parent)
        env = clean_env(
            HONE_API_URL=api,
            HONE_TOKEN=admin,
            HONE_DATABASE_URL=database_url,
            PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        )
        ran = 0
        for command in readme_commands():
            if check_without_running(command):
                continue
            for placeholder, value in substitutions.items():
                command = command.replace(placeholder, value)
            words = shlex.split(command)
            if words[:2] == ["hone", "worker"]:
                # A worker on "another machine": run it until the queue is empty.
                command += " --exit-when-idle 2"
            elif words[0] not in {"hone", "curl", "export"}:
                raise AssertionError(f"README line with no rule in this test: {command!r}")
            result = subprocess.run(
                ["bash", "-c", f"set -euo pipefail; {command}"],
                env={**env, "WORKER_TOKEN": worker_token},
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=400,
            )
            assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            if command.startswith("curl"):
                assert result.stdout.strip(), f"{command} printed nothing"
                assert not result.stdout.startswith('{"detail"'), f"{command}: {result.stdout[:500]}"
            if words[:3] == ["hone", "token", "create"]:
                worker_token = re.findall(r"hone_[A-Za-z0-9_-]{20,}", result.stdout)[-1]
            if words[:3] == ["hone", "study", "watch"]:
                assert "completed" in result.stdout
            ran += 1
        assert ran >= 15
        assert (tmp_path / "digits.csv").read_text().startswith("number,")

        # The Python example, with ``spec`` bound to the Branin example under a new name.
        spec = json.loads((REPO / "examples" / "branin.json").read_text())
        spec["name"] = "branin-from-python"
        monkeypatch.setenv("HONE_API_URL", api)
        monkeypatch.setenv("HONE_TOKEN", admin)
        get_settings.cache_clear()
        for block in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S):
            output = io.StringIO()
            with contextlib.redirect_stdout(output):
                exec(compile(block, "README.md", "exec"), {"spec": spec})
            assert output.getvalue().strip()
        get_settings.cache_clear()
    finally:
        stack.send_signal(2)
        try:
            stack.wait(60)
        except subprocess.TimeoutExpired:
            stack.kill()
            stack.wait()
        log.close()
