"""Real `hone` processes for integration tests: free ports, readiness waits, clean stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "integration-admin-token-0123456789abcdef"

# A study that finishes in seconds on a laptop CPU: two rounds, a few epochs on digits.
TINY_STUDY: dict[str, object] = {
    "name": "tiny-digits",
    "objective": {"trainer": "mlp", "dataset": "digits", "max_epochs": 2},
    "space": {
        "lr": {"type": "float", "low": 1e-3, "high": 1e-1, "scale": "log"},
        "hidden_units": {"type": "int", "low": 8, "high": 32},
    },
    "sampler": {"type": "random", "seed": 1},
    "pruner": {"type": "none"},
    "rounds": [{"trials": 2}, {"trials": 1}],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def hone(*args: str) -> list[str]:
    """argv for `hone ARGS` with the test interpreter."""
    return [sys.executable, "-m", "hone", *args]


def clean_env(**overrides: str) -> dict[str, str]:
    """The environment without the developer's HONE_* settings, plus ``overrides``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HONE_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


def run_hone(
    *args: str, env: Mapping[str, str], cwd: Path = REPO, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        hone(*args),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_http(
    url: str, *, process: subprocess.Popen[bytes] | None = None, timeout: float = 60
) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode} before {url} answered")
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
            last = AssertionError(f"{url} answered {response.status_code}: {response.text[:300]}")
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer 200 within {timeout}s: {last}")


@contextmanager
def running(
    argv: Sequence[str], *, env: Mapping[str, str], log: Path, cwd: Path = REPO, stop_timeout: float = 30
) -> Iterator[subprocess.Popen[bytes]]:
    """A process that is SIGTERMed (then killed) when the block ends; output goes to ``log``."""
    with log.open("ab") as out:
        process = subprocess.Popen(list(argv), env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(stop_timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def wait_for_status(
    api_url: str, study_id: int, statuses: set[str], *, token: str, timeout: float
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    summary: dict[str, object] = {}
    while time.monotonic() < deadline:
        response = httpx.get(
            f"{api_url}/api/v1/studies/{study_id}", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        response.raise_for_status()
        summary = response.json()
        if summary["status"] in statuses:
            return summary
        time.sleep(0.5)
    raise AssertionError(f"study {study_id} did not reach {statuses} within {timeout}s: {summary}")
