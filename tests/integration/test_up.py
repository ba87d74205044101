"""`hone up`: the whole local stack as a user starts it, run to a finished study, then Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from hone.stack import port_is_free
from tests.integration.processes import TINY_STUDY, clean_env, free_port, hone, run_hone, wait_http

pytestmark = pytest.mark.slow


def running_rows(database: Path) -> tuple[int, int]:
    """(hone_trials running, Optuna trials RUNNING) in the stack's SQLite file."""
    with sqlite3.connect(database) as conn:
        hone_running = conn.execute("SELECT count(*) FROM hone_trials WHERE state = 'running'").fetchone()[0]
        optuna_running = conn.execute("SELECT count(*) FROM trials WHERE state = 'RUNNING'").fetchone()[0]
    return int(hone_running), int(optuna_running)


def test_hone_up_completes_a_study_and_ctrl_c_mid_trial_leaves_nothing_running(tmp_path: Path) -> None:
    port, dashboard_port = free_port(), free_port()
    api = f"http://127.0.0.1:{port}"
    argv = hone("up", "--workers", "1", "--port", str(port), "--dashboard-port", str(dashboard_port))
    log = (tmp_path / "up.log").open("wb")
    # Run from tmp_path with the default data dir, as `make run` does from a clone.
    stack = subprocess.Popen(argv, env=clean_env(), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"{api}/readyz", process=stack, timeout=90)
        wait_http(f"http://127.0.0.1:{dashboard_port}/api/studies", process=stack, timeout=60)
        token_file = tmp_path / "hone-data" / "admin-token"
        assert token_file.stat().st_mode & 0o077 == 0

        # The laptop flow: no token or URL anywhere but what `hone up` stored, in any directory.
        spec = tmp_path / "tiny.json"
        spec.write_text(json.dumps(TINY_STUDY))
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        created = run_hone("study", "create", str(spec), env=clean_env(), cwd=elsewhere)
        assert created.returncode == 0, created.stderr
        study_id = re.search(r"created study (\d+)", created.stdout).group(1)  # type: ignore[union-attr]

        watched = run_hone(
            "study", "watch", study_id, "--api", api, env=clean_env(), cwd=tmp_path, timeout=240
        )
        assert watched.returncode == 0, watched.stderr
        assert "completed" in watched.stdout

        studies = httpx.get(f"http://127.0.0.1:{dashboard_port}/api/studies", timeout=10).json()
        assert TINY_STUDY["name"] in {s["study_name"] for s in studies["study_summaries"]}

        # hone's own page, from the installed package, and `hone up` says where it is.
        page = httpx.get(f"{api}/", timeout=10)
        assert page.status_code == 200 and 'src="web/app.js"' in page.text
        assert httpx.get(f"{api}/web/study.js", timeout=10).status_code == 200
        assert f"page {api}/ " in (tmp_path / "up.log").read_text()

        # A long study, stopped while a trial runs: the worker hands it back, nothing stays RUNNING.
        long_spec = {
            **TINY_STUDY,
            "name": "long",
            "objective": {"trainer": "mlp", "dataset": "digits", "max_epochs": 5000},
        }
        spec.write_text(json.dumps(long_spec))
        created = run_hone("study", "create", str(spec), "--api", api, env=clean_env(), cwd=tmp_path)
        assert created.returncode == 0, created.stderr
        database = tmp_path / "hone-data" / "hone.db"
        deadline = time.monotonic() + 60
        while running_rows(database)[0] == 0:
            assert time.monotonic() < deadline, "no trial of the long study started"
            time.sleep(0.2)

        started = time.monotonic()
        stack.send_signal(signal.SIGINT)
        assert stack.wait(60) == 0
        assert time.monotonic() - started < 60
    finally:
        if stack.poll() is None:
            stack.kill()
            stack.wait()
        log.close()

    assert running_rows(tmp_path / "hone-data" / "hone.db") == (0, 0), (tmp_path / "up.log").read_text()
    assert port_is_free("127.0.0.1", port) and port_is_free("127.0.0.1", dashboard_port)


def test_hone_up_refuses_a_port_in_use_with_one_clear_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_hone(
            "up", "--port", str(port), "--dashboard-port", str(free_port()), env=clean_env(), cwd=tmp_path
        )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
