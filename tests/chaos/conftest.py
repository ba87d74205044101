"""Chaos tests start real API and worker processes; each test gets its own database.

``postgres_server`` is a PostgreSQL of this test session's own (see
``tests/chaos/postgres_server.py``), for the tests that crash and restart the database.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.postgres_server import PostgresServer, unavailable_reason


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"no throwaway PostgreSQL: {reason}")
    server = PostgresServer.create()
    server.start()
    try:
        yield server
    finally:
        server.destroy()
