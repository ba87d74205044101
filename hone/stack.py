"""The local stack of ``hone up``: the API, N workers and optuna-dashboard as child processes.

Everything runs on one SQLite file in the data directory. The stack is supervised, not
self-healing: a child that dies is reported with the tail of its log and is not
restarted behind the user's back. Shutdown goes in dependency order — workers first
(they hand their trials back to the API), then the API, then the dashboard — each with a
bounded wait before SIGKILL, so Ctrl-C leaves no trial RUNNING.

Children run in their own session, so the terminal's Ctrl-C reaches only this
supervisor, which then stops them in order; on Linux they also get SIGTERM should the
supervisor itself be killed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

import httpx

ADMIN_TOKEN_FILE = "admin-token"
DATABASE_FILE = "hone.db"


def hone_command(*args: str) -> list[str]:
    """The argv that runs ``hone ARGS`` with this interpreter (no reliance on PATH)."""
    return [sys.executable, "-m", "hone", *args]


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / DATABASE_FILE).resolve()}"


def ensure_admin_token(data_dir: Path) -> tuple[str, bool]:
    """The stack's admin token, made once and kept in DATA_DIR/admin-token (mode 0600).

    Returns the token and whether it was created now.
    """
    path = data_dir / ADMIN_TOKEN_FILE
    if path.exists():
        token = path.read_text().strip()
        if len(token) >= 16:
            return token, False
        path.unlink()
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token, True


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    os.setsid()
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class Child:
    """One supervised process and the log file its output goes to."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    critical: bool = True
    process: subprocess.Popen[bytes] | None = None
    reported: bool = False
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    def close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class StackError(RuntimeError):
    """The stack could not start; the message says why and where to look."""


class Stack:
    """The processes of ``hone up`` and their supervision.

    Args:
        data_dir: Where the SQLite database, the admin token and the logs live.
        host: Interface the API and the dashboard listen on.
        port: The API's port.
        dashboard_port: optuna-dashboard's port.
        workers: Number of ``hone worker`` processes.
        say: Where progress messages go (one line each).
    """

    def __init__(
        self,
        *,
        data_dir: Path,
        host: str = "127.0.0.1",
        port: int = 8000,
        dashboard_port: int = 8080,
        workers: int = 2,
        say: Callable[[str], None] = print,
    ) -> None:
        self.data_dir = data_dir
        self.host = host
        self.port = port
        self.dashboard_port = dashboard_port
        self.workers = workers
        self.say = say
        self.database_url = sqlite_url(data_dir)
        self.log_dir = data_dir / "logs"
        self.token = ""
        self.children: list[Child] = []
        self._stop = threading.Event()
        self._signals = 0
        self._workers_gone = False

    @property
    def api_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @property
    def dashboard_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.dashboard_port}"

    def _env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(HONE_DATABASE_URL=self.database_url, PYTHONUNBUFFERED="1", **extra)
        return env

    # -- start -------------------------------------------------------------------------

    def prepare(self) -> bool:
        """Data dir, schema upgrade and admin token; returns whether the token is new."""
        for port in (self.port, self.dashboard_port):
            if not port_is_free(self.host, port):
                raise StackError(
                    f"port {port} on {self.host} is in use — is another `hone up` running? (see --port / --dashboard-port)"
                )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        upgrade = subprocess.run(
            hone_command("db", "upgrade"), env=self._env(), capture_output=True, text=True, check=False
        )
        if upgrade.returncode != 0:
            tail = "\n".join((upgrade.stdout + upgrade.stderr).strip().splitlines()[-15:])
            raise StackError(f"`hone db upgrade` failed (exit {upgrade.returncode}):\n{tail}")
        self.token, created = ensure_admin_token(self.data_dir)
        return created

    def start(self, *, ready_timeout: float = 60.0) -> None:
        """Start every child and wait until the API and the dashboard answer."""
        api_env = self._env(HONE_ADMIN_TOKEN=self.token)
        self.children.append(
            Child(
                "api",
                hone_command("api", "--host", self.host, "--port", str(self.port)),
                api_env,
                self.log_dir / "api.log",
            )
        )
        self.children.append(
            Child(
                "dashboard",
                hone_command("dashboard", "--host", self.host, "--port", str(self.dashboard_port)),
                self._env(),
                self.log_dir / "dashboard.log",
            )
        )
        # Workers talk to the API only: no database URL, no admin bootstrap secret.
        worker_env = self._env(HONE_TOKEN=self.token, HONE_API_URL=self.api_url)
        for key in ("HONE_DATABASE_URL", "HONE_ADMIN_TOKEN"):
            worker_env.pop(key, None)
        for index in range(1, self.workers + 1):
            self.children.append(
                Child(
                    f"worker-{index}",
                    hone_command("worker", "--api", self.api_url, "--devices", "auto"),
                    worker_env,
                    self.log_dir / f"worker-{index}.log",
                    critical=False,
                )
            )
        self._child("api").start()
        self._child("dashboard").start()
        self._wait_http(self._child("api"), f"{self.api_url}/readyz", ready_timeout)
        for child in self.children:
            if child.name.startswith("worker-"):
                child.start()
        self._wait_http(self._child("dashboard"), f"{self.dashboard_url}/api/studies", ready_timeout)

    def _child(self, name: str) -> Child:
        return next(child for child in self.children if child.name == name)

    def _wait_http(self, child: Child, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stop.is_set():
            if not child.alive():
                raise StackError(
                    f"{child.name} exited with code {child.returncode} while starting:\n{child.log_tail()}"
                )
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        if self._stop.is_set():
            return
        raise StackError(f"{child.name} did not answer {url} within {timeout:.0f}s; see {child.log_path}")

    # -- run ---------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        def _handle(signum: int, _frame: FrameType | None) -> None:
            self._signals += 1
            self._stop.set()

        signal.signal(signal.SIGINT, _handle)
        signal.signal(signal.SIGTERM, _handle)

    def request_stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def supervise(self, *, poll: float = 0.5) -> int:
        """Block until a stop is requested (0) or a critical child dies (1)."""
        while not self._stop.wait(poll):
            for child in self.children:
                if child.alive() or child.reported:
                    continue
                child.reported = True
                self.say(f"{child.name} exited with code {child.returncode}; last lines of {child.log_path}:")
                self.say(child.log_tail())
                if child.critical:
                    self.say(f"the stack cannot go on without {child.name}; stopping")
                    return 1
            workers = [child for child in self.children if child.name.startswith("worker-")]
            if workers and not self._workers_gone and all(child.reported for child in workers):
                self._workers_gone = True
                self.say(
                    "every worker has exited; the API and the dashboard keep running (Ctrl-C stops them)"
                )
        return 0

    # -- stop --------------------------------------------------------------------------

    def shutdown(self, *, worker_timeout: float = 30.0, server_timeout: float = 10.0) -> None:
        """Stop workers, then the API, then the dashboard; SIGKILL what outlives its bound."""
        groups: Sequence[tuple[str, list[Child], float]] = (
            ("workers", [c for c in self.children if c.name.startswith("worker-")], worker_timeout),
            ("api", [c for c in self.children if c.name == "api"], server_timeout),
            ("dashboard", [c for c in self.children if c.name == "dashboard"], server_timeout),
        )
        for label, members, timeout in groups:
            running = [child for child in members if child.alive()]
            if running:
                self.say(f"stopping {label}…")
            for child in running:
                child.signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for child in running:
                assert child.process is not None
                # A second Ctrl-C cuts the wait short.
                while child.alive() and time.monotonic() < deadline and self._signals < 2:
                    time.sleep(0.05)
                if child.alive():
                    self.say(f"{child.name} did not stop within {timeout:.0f}s; killing it")
                    child.signal(signal.SIGKILL)
                    child.process.wait()
        for child in self.children:
            child.close_log()
