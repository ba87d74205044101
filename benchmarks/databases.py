"""Scratch databases for a benchmark run: a SQLite file, or a fresh PostgreSQL database.

PostgreSQL comes from ``HONE_BENCH_POSTGRES_URL`` (else ``HONE_TEST_POSTGRES_URL``); a
database ``hone_bench_<random>`` is created on that server and dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from service import migrate


def postgres_server() -> str | None:
    """The server URL to create scratch databases on, if one is configured and answers."""
    url = os.environ.get("HONE_BENCH_POSTGRES_URL") or os.environ.get("HONE_TEST_POSTGRES_URL")
    if not url:
        return None
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return None
    finally:
        engine.dispose()
    return url


@contextmanager
def scratch_database(kind: str, *, upgrade: bool = True) -> Iterator[str]:
    """A fresh, empty database URL of ``kind`` (``sqlite`` or ``postgresql``), schema created."""
    if kind == "sqlite":
        directory = Path(tempfile.mkdtemp(prefix="hone-bench-"))
        url = f"sqlite:///{directory / 'bench.db'}"
        try:
            if upgrade:
                migrate.upgrade(url)
            yield url
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    server = postgres_server()
    if server is None:
        raise RuntimeError("no PostgreSQL: set HONE_BENCH_POSTGRES_URL or HONE_TEST_POSTGRES_URL")
    name = f"hone_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
        if upgrade:
            migrate.upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
