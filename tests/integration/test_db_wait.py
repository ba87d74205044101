"""`hone db upgrade --wait`: the compose `migrate` step waits, boundedly, for a database
that is not accepting connections yet, saying so on each try, and gives up with one clear
line, never a traceback. The late database is the real test PostgreSQL behind a port that
opens once the command has said it is waiting.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from contextlib import suppress

import pytest
from sqlalchemy.engine import make_url

from tests.integration.processes import clean_env, free_port, hone, run_hone

pytestmark = pytest.mark.slow


def pipe(source: socket.socket, target: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    with suppress(OSError):
        target.shutdown(socket.SHUT_WR)


def forward_when(opened: threading.Event, port: int, target: tuple[str, int], stop: threading.Event) -> None:
    """Forward 127.0.0.1:port to ``target``, listening only once ``opened`` is set."""
    opened.wait()
    with socket.create_server(("127.0.0.1", port)) as server:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()


@pytest.mark.postgres
def test_upgrade_waits_for_a_database_that_opens_late(postgres_url: str) -> None:
    real = make_url(postgres_url)
    port = free_port()
    opened, stop = threading.Event(), threading.Event()
    target = (real.host or "127.0.0.1", real.port or 5432)
    threading.Thread(target=forward_when, args=(opened, port, target, stop), daemon=True).start()
    late = real.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    process = subprocess.Popen(
        hone("db", "upgrade", "--wait", "120", "--database-url", late),
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()  # the database is not there yet: it says so
        assert "waiting for the database" in first and "s left" in first, first
        opened.set()  # now it comes up
        out, _ = process.communicate(timeout=120)
    finally:
        stop.set()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert "schema current" in out


def test_upgrade_gives_up_after_the_wait_with_one_clear_line() -> None:
    closed = f"postgresql+psycopg://hone:secret-password@127.0.0.1:{free_port()}/hone"
    started = time.monotonic()
    done = run_hone("db", "upgrade", "--wait", "2", "--database-url", closed, env=clean_env())
    assert done.returncode == 1
    assert time.monotonic() - started < 60
    assert "did not answer within 2 s" in done.stderr
    assert "secret-password" not in done.stderr  # the URL is shown without its password
    assert "Traceback" not in done.stderr


def test_without_wait_a_missing_database_still_fails_at_once() -> None:
    closed = f"postgresql+psycopg://hone:pw@127.0.0.1:{free_port()}/hone"
    done = run_hone("db", "upgrade", "--database-url", closed, env=clean_env())
    assert done.returncode != 0
    assert "waiting for the database" not in done.stderr
