"""A throwaway PostgreSQL server of the test's own, to crash and restart.

The shared cluster at 127.0.0.1:5432 serves every other test running in parallel, so it
is never restarted; this one lives in a temporary directory on a free port, started with
the PostgreSQL 15 binaries as the ``postgres`` user (the tests run as root in CI).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.integration.processes import free_port

BIN = Path("/usr/lib/postgresql/15/bin")


def unavailable_reason() -> str | None:
    """Why a throwaway server cannot be started here, or None if it can."""
    if os.geteuid() != 0:
        return "needs root to run PostgreSQL as the postgres user"
    if not (BIN / "pg_ctl").exists():
        return f"PostgreSQL 15 binaries not found in {BIN}"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres user"
    return None


@dataclass
class PostgresServer:
    """``initdb`` once, then ``start`` / ``crash`` (``pg_ctl stop -m immediate``) / ``start``."""

    directory: Path
    port: int

    @classmethod
    def create(cls) -> PostgresServer:
        directory = Path(tempfile.mkdtemp(prefix="hone-pg-"))
        shutil.chown(directory, "postgres", "postgres")
        server = cls(directory=directory, port=free_port())
        server._run("initdb", "-D", str(server.data), "--auth=trust", "-U", "postgres", "--no-sync")
        return server

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", str(BIN / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"{tool} failed: {done.stdout}\n{done.stderr}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.directory / "log"), "-w", "start"
        )

    def crash(self) -> None:
        """Stop at once, as a crash does: no checkpoint, clients cut off mid-query."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")

    def create_database(self, name: str) -> str:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def destroy(self) -> None:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        time.sleep(0.2)
        shutil.rmtree(self.directory, ignore_errors=True)
