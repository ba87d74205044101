"""A real `hone api` and real `hone worker` processes for end-to-end and chaos tests.

Every process runs in its own session (process group), so a test can signal a whole
worker (supervisor and slots) with ``os.killpg`` and teardown never leaves one behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from service import migrate
from tests.integration.processes import REPO, clean_env, free_port, hone, wait_http

ADMIN = "stack-admin-token-0123456789abcdef"


@dataclass
class Stack:
    url: str  # the database
    api: str  # the API's base URL
    tmp: Path
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN}"}

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.api}/api/v1{path}", headers=self.headers, timeout=10)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any = None) -> Any:
        response = httpx.post(f"{self.api}/api/v1{path}", headers=self.headers, json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def start(self, argv: list[str], name: str, **env: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv,
            env={**self.env, **env},
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def worker(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        argv = hone("worker", "--api", self.api, "--token", ADMIN, "--devices", "cpu", *args)
        return self.start(argv, name)

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def sql(self, query: str) -> list[Any]:
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(query)))
        finally:
            engine.dispose()

    def wait(self, condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def wait_status(self, study_id: int, status: str, *, timeout: float) -> dict[str, Any]:
        result: dict[str, Any] = self.wait(
            lambda: (s := self.get(f"/studies/{study_id}"))["status"] == status and s,
            timeout=timeout,
            what=f"study {study_id} to be {status}",
        )
        return result


def kill_group(process: subprocess.Popen[bytes], signum: int = signal.SIGKILL) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


@contextmanager
def stack(url: str, tmp: Path, **settings: str) -> Iterator[Stack]:
    """A migrated database at ``url`` and a `hone api` over it; everything killed at the end."""
    migrate.upgrade(url)
    port = free_port()
    env = clean_env(
        HONE_DATABASE_URL=url,
        HONE_ADMIN_TOKEN=ADMIN,
        PYTHONPATH=str(REPO),
        **{f"HONE_{key.upper()}": value for key, value in settings.items()},
    )
    running = Stack(url=url, api=f"http://127.0.0.1:{port}", tmp=tmp, env=env)
    try:
        api = running.start(hone("api", "--port", str(port)), "api")
        wait_http(f"{running.api}/readyz", process=api, timeout=60)
        yield running
    finally:
        for process in reversed(running.processes):
            if process.poll() is None:
                kill_group(process, signal.SIGTERM)
        for process in running.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                kill_group(process)
                process.wait()
