"""The worker's side of the lease protocol: an HTTP client for ``/api/v1/leases``.

Transient trouble (the API restarting, a proxy answering 502, a dropped connection) is
retried with exponential backoff and jitter; a 4xx answer is never retried, because
asking again cannot change it. A 409 or 404 on a lease means the lease is dead (it
expired and was reaped, or another worker holds the configuration now): the client
raises :class:`LeaseGone` and the worker moves on.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_delay,
    stop_when_event_set,
    wait_exponential_jitter,
)

API_PREFIX = "/api/v1"


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
class Objective:
    """What to run for a trial, as the service describes it in a grant."""

    trainer: str  # "mlp" | "python"
    metric: str
    direction: str
    fixed: dict[str, Any] = field(default_factory=dict)
    entrypoint: str | None = None
    dataset: str | None = None
    max_epochs: int | None = None
    timeout_s: float | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Objective:
        return cls(
            trainer=str(data.get("trainer", "mlp")),
            metric=str(data.get("metric", "val_loss")),
            direction=str(data.get("direction", "minimize")),
            fixed=dict(data.get("fixed") or {}),
            entrypoint=data.get("entrypoint"),
            dataset=data.get("dataset"),
            max_epochs=data.get("max_epochs"),
            timeout_s=data.get("timeout_s"),
        )


@dataclass(frozen=True)
class Grant:
    """One leased trial: run ``params`` for ``study`` and report under ``lease_id``."""

    lease_id: str
    expires_at: str
    heartbeat_interval: float
    study_id: int
    study_name: str
    number: int
    params: dict[str, Any]
    round: int
    objective: Objective

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Grant:
        lease, study, trial = data["lease"], data["study"], data["trial"]
        return cls(
            lease_id=str(lease["id"]),
            expires_at=str(lease["expires_at"]),
            heartbeat_interval=float(lease["heartbeat_interval"]),
            study_id=int(study["id"]),
            study_name=str(study["name"]),
            number=int(trial["number"]),
            params=dict(trial["params"]),
            round=int(trial["round"]),
            objective=Objective.from_json(dict(data.get("objective") or {})),
        )


@dataclass(frozen=True)
class NoWork:
    """The service has nothing to grant now; ask again after ``retry_after`` seconds."""

    retry_after: float


@dataclass(frozen=True)
class Heartbeat:
    expires_at: datetime | None
    cancel: bool


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
            headers={"Authorization": f"Bearer {token}"},
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

    def _lease_call(self, lease_id: str, action: str, body: dict[str, Any] | None, deadline: float) -> Any:
        response = self._post(f"/leases/{lease_id}/{action}", body, deadline=deadline)
        if response.status_code in (404, 409):
            raise LeaseGone(lease_id, response.status_code, _detail(response))
        if response.status_code >= 400:
            raise ApiRejected(response.status_code, _detail(response))
        return response.json() if response.content else {}

    def lease(
        self,
        *,
        worker: str,
        devices: list[str],
        studies: list[int] | None = None,
        host: str | None = None,
        deadline: float = 30.0,
    ) -> Grant | NoWork:
        body: dict[str, Any] = {"worker": worker, "devices": devices, "host": host}
        if studies:
            body["studies"] = studies
        response = self._post("/leases", body, deadline=deadline)
        if response.status_code == 204:
            return NoWork(retry_after=_retry_after(response))
        if response.status_code >= 400:
            raise ApiRejected(response.status_code, _detail(response))
        return Grant.from_json(response.json())

    def report(
        self,
        lease_id: str,
        *,
        step: int,
        value: float,
        metrics: dict[str, float],
        earlier: list[dict[str, Any]] | None = None,
        deadline: float = 30.0,
    ) -> bool:
        """Send a step (and ``earlier`` ones held back); True when the pruner says stop."""
        body: dict[str, Any] = {"step": step, "value": value, "metrics": metrics}
        _add_steps(body, earlier)
        return bool(self._lease_call(lease_id, "report", body, deadline).get("prune", False))

    def heartbeat(self, lease_id: str, *, deadline: float = 10.0) -> Heartbeat:
        data = self._lease_call(lease_id, "heartbeat", None, deadline)
        expires = data.get("expires_at")
        return Heartbeat(
            expires_at=datetime.fromisoformat(expires) if expires else None,
            cancel=bool(data.get("cancel", False)),
        )

    def complete(
        self,
        lease_id: str,
        *,
        value: float,
        metrics: dict[str, float],
        steps: list[dict[str, Any]] | None = None,
        deadline: float = 3600.0,
    ) -> None:
        body: dict[str, Any] = {"value": value, "metrics": metrics}
        _add_steps(body, steps)
        self._lease_call(lease_id, "complete", body, deadline)

    def fail(
        self,
        lease_id: str,
        *,
        reason: str,
        retry: bool,
        steps: list[dict[str, Any]] | None = None,
        deadline: float = 3600.0,
    ) -> None:
        body: dict[str, Any] = {"reason": reason, "retry": retry}
        _add_steps(body, steps)
        self._lease_call(lease_id, "fail", body, deadline)

    def prune(self, lease_id: str, *, deadline: float = 3600.0) -> None:
        self._lease_call(lease_id, "prune", None, deadline)


def _add_steps(body: dict[str, Any], steps: list[dict[str, Any]] | None) -> None:
    """Held-back steps ride along only when there are some (older APIs ignore the field)."""
    if steps:
        body["steps"] = steps


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
