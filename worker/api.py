"""The worker's side of the lease protocol: an HTTP client for ``/api/v1/leases``.

Transient trouble (the API restarting, a proxy answering 502, a dropped connection) is
retried with exponential backoff and jitter; a 4xx answer is never retried, because
asking again cannot change it. A 409 or 404 on a lease means the lease is dead (it
expired and was reaped, or another worker holds the configuration now): the client
raises :class:`LeaseGone` and the worker moves on.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_delay,
    stop_when_event_set,
    wait_exponential_jitter,
)

from protocol import (
    CompleteIn,
    FailIn,
    FailureCause,
    FinishedOut,
    HeartbeatOut,
    HeldStep,
    LeaseGrant,
    LeaseRequest,
    ReportIn,
    ReportOut,
)

API_PREFIX = "/api/v1"
Answer = TypeVar("Answer", bound=BaseModel)


class LeaseGone(Exception):
    """The service refused a call on this lease (409: expired or superseded; 404: unknown)."""

    def __init__(self, lease_id: str, status_code: int, detail: str) -> None:
        super().__init__(f"lease {lease_id} refused with {status_code}: {detail}")
        self.lease_id = lease_id
        self.status_code = status_code
        self.detail = detail


class ApiUnavailable(Exception):
    """The API could not be reached (or kept failing with 5xx) within the time allowed."""


class ApiRejected(Exception):
    """The API answered a non-lease 4xx (bad token, wrong role, invalid request)."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"API answered {status_code}: {detail}")
        self.status_code = status_code


@dataclass(frozen=True)
class NoWork:
    """The service has nothing to grant now; ask again after ``retry_after`` seconds."""

    retry_after: float


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, httpx.TransportError):
        return True
    return isinstance(error, httpx.HTTPStatusError) and error.response.status_code >= 500


class LeaseClient:
    """Typed calls of the lease protocol, with retries on transient failures.

    Args:
        api_url: base URL of the API (``http://host:8000``).
        token: a bearer token with the ``worker`` role.
        stop: when set, retry loops give up early (used when the worker is shutting down
            hard); ``None`` retries until each call's own deadline.
        timeout: seconds for one HTTP request.
    """

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        stop: threading.Event | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=api_url.rstrip("/") + API_PREFIX,
            # No token, no header ("Bearer " alone is not a valid header): the API answers
            # 401 and the worker waits for one like for a refused token.
            headers={"Authorization": f"Bearer {token}"} if token else {},
            timeout=timeout,
            transport=transport,
        )
        self._stop = stop or threading.Event()

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, body: dict[str, Any] | None, *, deadline: float) -> httpx.Response:
        retrying = Retrying(
            retry=retry_if_exception(_is_transient),
            wait=wait_exponential_jitter(multiplier=0.2, max=5.0),
            stop=stop_after_delay(deadline) | stop_when_event_set(self._stop),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    response = self._http.post(path, json=body)
                    if response.status_code >= 500:
                        response.raise_for_status()
                    return response
        except (httpx.TransportError, httpx.HTTPStatusError) as error:
            raise ApiUnavailable(f"POST {path}: {error}") from error
        raise AssertionError("unreachable")  # pragma: no cover

    def _lease_call(
        self, lease_id: str, action: str, body: BaseModel | None, answer: type[Answer], deadline: float
    ) -> Answer:
        response = self._post(f"/leases/{lease_id}/{action}", _json(body), deadline=deadline)
        if response.status_code in (404, 409):
            raise LeaseGone(lease_id, response.status_code, _detail(response))
        if response.status_code >= 400:
            raise ApiRejected(response.status_code, _detail(response))
        return answer.model_validate_json(response.content)

    def lease(
        self,
        *,
        worker: str,
        devices: list[str],
        studies: list[int] | None = None,
        host: str | None = None,
        deadline: float = 30.0,
    ) -> LeaseGrant | NoWork:
        body = LeaseRequest.model_construct(
            worker=worker, devices=devices, host=host, studies=studies or None
        )
        response = self._post("/leases", _json(body), deadline=deadline)
        if response.status_code == 204:
            return NoWork(retry_after=_retry_after(response))
        if response.status_code >= 400:
            raise ApiRejected(response.status_code, _detail(response))
        return LeaseGrant.model_validate_json(response.content)

    def report(
        self,
        lease_id: str,
        *,
        step: int,
        value: float,
        metrics: dict[str, float],
        earlier: list[HeldStep] | None = None,
        deadline: float = 30.0,
    ) -> bool:
        """Send a step (and ``earlier`` ones held back); True when the pruner says stop."""
        body = ReportIn.model_construct(step=step, value=value, metrics=metrics, steps=earlier or [])
        return self._lease_call(lease_id, "report", body, ReportOut, deadline).prune

    def heartbeat(self, lease_id: str, *, deadline: float = 10.0) -> HeartbeatOut:
        return self._lease_call(lease_id, "heartbeat", None, HeartbeatOut, deadline)

    def complete(
        self,
        lease_id: str,
        *,
        value: float,
        metrics: dict[str, float],
        steps: list[HeldStep] | None = None,
        deadline: float = 3600.0,
    ) -> FinishedOut:
        body = CompleteIn.model_construct(value=value, metrics=metrics, steps=steps or [])
        return self._lease_call(lease_id, "complete", body, FinishedOut, deadline)

    def fail(
        self,
        lease_id: str,
        *,
        reason: str,
        retry: bool,
        cause: FailureCause = "error",
        traceback: str | None = None,
        steps: list[HeldStep] | None = None,
        deadline: float = 3600.0,
    ) -> FinishedOut:
        body = FailIn.model_construct(
            reason=reason, cause=cause, traceback=traceback, retry=retry, steps=steps or []
        )
        return self._lease_call(lease_id, "fail", body, FinishedOut, deadline)

    def prune(self, lease_id: str, *, deadline: float = 3600.0) -> FinishedOut:
        return self._lease_call(lease_id, "prune", None, FinishedOut, deadline)


def _json(body: BaseModel | None) -> dict[str, Any] | None:
    """A request body as it travels. Bodies are built with ``model_construct``, unchecked:
    the service is the judge (a step it refuses must not stop the worker from sending the
    result). ``steps`` and ``studies`` go only when there are some."""
    if body is None:
        return None
    data = body.model_dump(mode="json")
    if not data.get("steps", True):
        del data["steps"]
    if data.get("studies", ()) is None:
        del data["studies"]
    return data


def _detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(data, dict) and "detail" in data:
        return str(data["detail"])
    return str(data)[:200]


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0
