"""uvicorn's access log without the fleet's routine chatter.

Every worker slot heartbeats every ``heartbeat_interval`` seconds and reports each step: at
5,000 leases that is 500 lines a second of ``POST /api/v1/leases/…/heartbeat 200``, which
buries the requests a person reads logs for and costs the API a share of its CPU. Those
calls are counted in ``/metrics`` (``hone_http_requests_total``) instead; a refused one
(4xx, 5xx) is still logged.
"""

from __future__ import annotations

import logging

ACCESS_LOGGER = "uvicorn.access"
_ROUTINE = ("/heartbeat", "/report")


class RoutineLeaseCalls(logging.Filter):
    """Drops access lines of successful heartbeats and step reports."""

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn's access record: args = (client, method, path, http_version, status)
        args = record.args
        if not isinstance(args, tuple) or len(args) != 5:
            return True
        path, status = str(args[2]), args[4]
        routine = path.startswith("/api/v1/leases/") and path.endswith(_ROUTINE)
        return not (routine and isinstance(status, int) and status < 400)


def quiet_routine_lease_calls() -> None:
    """Install the filter once on uvicorn's access logger (idempotent)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RoutineLeaseCalls) for f in logger.filters):
        logger.addFilter(RoutineLeaseCalls())
