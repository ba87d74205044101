"""uvicorn's access log leaves out a fleet's successful heartbeats and step reports only."""

from __future__ import annotations

import logging

import pytest

from service.access_log import ACCESS_LOGGER, RoutineLeaseCalls, quiet_routine_lease_calls


def _record(path: str, status: int, method: str = "POST") -> logging.LogRecord:
    # As uvicorn logs a request: '%s - "%s %s HTTP/%s" %d' with (client, method, path, version, status).
    return logging.LogRecord(
        ACCESS_LOGGER, logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", method, path, "1.1", status), None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("path", "status", "logged"),
    [
        ("/api/v1/leases/abc/heartbeat", 200, False),
        ("/api/v1/leases/abc/report", 200, False),
        ("/api/v1/leases/abc/heartbeat", 409, True),  # a refused one is worth a line
        ("/api/v1/leases/abc/report", 404, True),
        ("/api/v1/leases/abc/complete", 200, True),
        ("/api/v1/leases", 201, True),
        ("/api/v1/studies/1", 200, True),
    ],
)
def test_only_successful_heartbeats_and_reports_are_left_out(path: str, status: int, logged: bool) -> None:
    assert RoutineLeaseCalls().filter(_record(path, status)) is logged


def test_the_filter_is_installed_once_on_uvicorn_s_access_logger() -> None:
    quiet_routine_lease_calls()
    quiet_routine_lease_calls()
    filters = logging.getLogger(ACCESS_LOGGER).filters
    assert sum(isinstance(f, RoutineLeaseCalls) for f in filters) == 1
