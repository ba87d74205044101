"""A small typed client for hone's study routes (``/api/v1/studies…``).

The ``hone study …`` commands use it, and so can notebooks and scripts::

    from hone.client import Client

    with Client.from_settings() as client:  # HONE_API_URL / HONE_TOKEN
        study = client.create_study(json.load(open("examples/digits.json")))
        print(client.get_study(study.id).status)

Answers are the wire contract's models (:mod:`protocol`): ``StudyDetail``, ``TrialPage``,
``RoundOut``…, the same classes the API declares its routes with.

Every failure is one exception type, :class:`ApiError`, whose ``str()`` is a message a
person can act on. Connection errors are retried a few times, briefly: the API may be
starting, or restarting behind a load balancer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import TracebackType
from typing import IO, Any, Literal, Self, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from hone.settings import Settings, get_settings
from protocol import (
    DiagnosisOut,
    EnqueuedTrial,
    ImportanceEvaluator,
    ImportanceOut,
    RoundOut,
    RoundPreview,
    StudyDetail,
    StudySummary,
    TrialDetail,
    TrialOut,
    TrialPage,
)

API_PREFIX = "/api/v1"
TrialOrder = Literal["value", "number"]
ExportFormat = Literal["csv", "json"]
Model = TypeVar("Model", bound=BaseModel)
_SUMMARIES = TypeAdapter(list[StudySummary])
_ROUNDS = TypeAdapter(list[RoundOut])

# Only errors where the request cannot have reached the server are retried, so a retried
# POST never creates a study twice.
_retry_connection = retry(
    retry=retry_if_exception_type((httpx.ConnectError, httpx.ConnectTimeout)),
    stop=stop_after_attempt(4),
    wait=wait_exponential(multiplier=0.1, max=1.0),
    reraise=True,
)


class ApiError(Exception):
    """A request the API refused (``status`` is its HTTP status) or could not answer.

    ``status`` is 0 when the API could not be reached at all. ``detail`` is the body's
    ``detail`` as the API sent it; ``str(error)`` is the human version of it.
    """

    def __init__(self, status: int, detail: Any, *, message: str | None = None) -> None:
        self.status = status
        self.detail = detail
        self.message = message or _describe(status, detail)
        super().__init__(self.message)


class ApiUnreachableError(ApiError):
    """The API did not answer: not running, wrong URL, or a network in the way."""

    def __init__(self, api_url: str, cause: Exception) -> None:
        super().__init__(
            0,
            str(cause),
            message=f"cannot reach the hone API at {api_url} — is `hone up` running?",
        )


def _describe(status: int, detail: Any) -> str:
    if isinstance(detail, list) and detail and all(isinstance(item, dict) for item in detail):
        # FastAPI's 422: [{"loc": ["body", "space", "lr", "low"], "msg": "..."}, ...]
        parts = []
        for item in detail:
            loc = [str(part) for part in item.get("loc", []) if part not in ("body", "query", "path")]
            where = ".".join(loc)
            msg = str(item.get("msg", item)).removeprefix("Value error, ")  # an older API's 422
            parts.append(f"{where}: {msg}" if where else msg)
        return "; ".join(parts)
    if isinstance(detail, str) and detail:
        return detail
    if detail:
        return json.dumps(detail)
    return {
        401: "the API refused the token (missing or unknown); pass --token or set HONE_TOKEN",
        403: "this token's role may not do that",
        404: "not found",
        503: "the API cannot reach its database right now; try again shortly",
    }.get(status, f"the API answered HTTP {status}")


def _raise_for_status(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        response.read()
        body = response.json()
        detail = body.get("detail", body) if isinstance(body, dict) else body
    except (ValueError, httpx.ResponseNotRead):
        detail = response.text.strip() if response.text else None
    raise ApiError(response.status_code, detail)


class Client:
    """Synchronous client of the hone API's study routes.

    Args:
        api_url: Base URL of the API, e.g. ``http://127.0.0.1:8000``.
        token: Bearer token (role ``read`` for the GET methods, ``admin`` for the rest).
        timeout: Seconds per request.
        transport: An httpx transport to use instead of the network (tests).
    """

    def __init__(
        self,
        api_url: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.api_url + API_PREFIX, headers=headers, timeout=timeout, transport=transport
        )

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, timeout: float = 30.0) -> Client:
        """A client for ``HONE_API_URL`` with ``HONE_TOKEN``."""
        settings = settings or get_settings()
        token = settings.token.get_secret_value() if settings.token else None
        return cls(settings.api_url, token, timeout=timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- transport ---------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = _retry_connection(self._http.request)(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiUnreachableError(self.api_url, exc) from exc
        _raise_for_status(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        return response.json() if response.content else None

    def _model(self, answer: type[Model], method: str, path: str, **kwargs: Any) -> Model:
        return answer.model_validate_json(self._request(method, path, **kwargs).content)

    # -- studies -----------------------------------------------------------------------

    def create_study(self, spec: dict[str, Any]) -> StudyDetail:
        """Create a study from its spec (the JSON of ``examples/digits.json``)."""
        return self._model(StudyDetail, "POST", "/studies", json=spec)

    def list_studies(self) -> list[StudySummary]:
        return _SUMMARIES.validate_python(_items(self._json("GET", "/studies")))

    def get_study(self, study_id: int) -> StudyDetail:
        """The study's summary: status, direction, counts by state, best trial, current round."""
        return self._model(StudyDetail, "GET", f"/studies/{study_id}")

    def delete_study(self, study_id: int) -> None:
        self._request("DELETE", f"/studies/{study_id}")

    def pause(self, study_id: int) -> StudyDetail:
        return self._action(study_id, "pause")

    def resume(self, study_id: int) -> StudyDetail:
        return self._action(study_id, "resume")

    def stop(self, study_id: int) -> StudyDetail:
        return self._action(study_id, "stop")

    def _action(self, study_id: int, action: str) -> StudyDetail:
        return self._model(StudyDetail, "POST", f"/studies/{study_id}/{action}")

    # -- trials ------------------------------------------------------------------------

    def trials(
        self,
        study_id: int,
        *,
        state: str | None = None,
        round: int | None = None,
        order_by: TrialOrder | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> TrialPage:
        """One page of trials; ``next_cursor`` is None on the last."""
        params = {
            "state": state,
            "round": round,
            "order_by": order_by,
            "limit": limit,
            "cursor": cursor,
        }
        return self._model(
            TrialPage,
            "GET",
            f"/studies/{study_id}/trials",
            params={key: value for key, value in params.items() if value is not None},
        )

    def iter_trials(
        self,
        study_id: int,
        *,
        state: str | None = None,
        round: int | None = None,
        order_by: TrialOrder | None = None,
        page_size: int = 500,
    ) -> Iterator[TrialOut]:
        """Every trial matching the filters, fetched page by page."""
        cursor: str | None = None
        while True:
            page = self.trials(
                study_id, state=state, round=round, order_by=order_by, limit=page_size, cursor=cursor
            )
            yield from page.items
            cursor = page.next_cursor
            if not cursor:
                return

    def trial(self, study_id: int, number: int) -> TrialDetail:
        return self._model(TrialDetail, "GET", f"/studies/{study_id}/trials/{number}")

    def enqueue(self, study_id: int, params: dict[str, Any]) -> EnqueuedTrial:
        """Queue a configuration to be tried next (e.g. a known good one)."""
        return self._model(EnqueuedTrial, "POST", f"/studies/{study_id}/trials", json={"params": params})

    def best(self, study_id: int) -> TrialOut:
        return self._model(TrialOut, "GET", f"/studies/{study_id}/best")

    # -- rounds ------------------------------------------------------------------------

    def rounds(self, study_id: int) -> list[RoundOut]:
        return _ROUNDS.validate_python(_items(self._json("GET", f"/studies/{study_id}/rounds")))

    def next_round(self, study_id: int) -> RoundPreview:
        """The box the next round would sample in (a preview; nothing is opened)."""
        return self._model(RoundPreview, "GET", f"/studies/{study_id}/rounds/next")

    def open_round(
        self,
        study_id: int,
        *,
        box: dict[str, Any] | Literal["diagnosis"] | None = None,
        trials: int | None = None,
    ) -> RoundOut:
        """Open the next round now, in ``box`` (default: the narrowed one; ``"diagnosis"``:
        the basic recipe's) with ``trials`` configurations (default: the spec's; required
        past the spec's last round)."""
        body: dict[str, Any] = {}
        if box is not None:
            body["box"] = box
        if trials is not None:
            body["trials"] = trials
        return self._model(RoundOut, "POST", f"/studies/{study_id}/rounds", json=body)

    def importance(
        self, study_id: int, *, evaluator: ImportanceEvaluator = "ped_anova", round: int | None = None
    ) -> ImportanceOut:
        """Parameter importances by ``evaluator``, of the study or of one ``round``."""
        params: dict[str, Any] = {"evaluator": evaluator}
        if round is not None:
            params["round"] = round
        return self._model(ImportanceOut, "GET", f"/studies/{study_id}/importance", params=params)

    def diagnosis(
        self,
        study_id: int,
        *,
        round: int | None = None,
        bias_threshold: float | None = None,
        variance_threshold: float | None = None,
    ) -> DiagnosisOut:
        """The basic recipe's diagnosis of the study's (or one round's) best trials."""
        params: dict[str, Any] = {}
        for name, value in (
            ("round", round),
            ("bias_threshold", bias_threshold),
            ("variance_threshold", variance_threshold),
        ):
            if value is not None:
                params[name] = value
        return self._model(DiagnosisOut, "GET", f"/studies/{study_id}/diagnosis", params=params)

    # -- export ------------------------------------------------------------------------

    def export(self, study_id: int, format: ExportFormat = "csv") -> bytes:
        """The study's trials as CSV or JSON, whole."""
        return self._request("GET", f"/studies/{study_id}/export", params={"format": format}).content

    def export_to(self, study_id: int, out: IO[bytes], format: ExportFormat = "csv") -> int:
        """Stream the export into ``out`` without holding it in memory; returns the bytes written."""
        written = 0
        path = f"/studies/{study_id}/export"
        try:
            with self._http.stream("GET", path, params={"format": format}) as response:
                _raise_for_status(response)
                for chunk in response.iter_bytes():
                    out.write(chunk)
                    written += len(chunk)
        except httpx.TransportError as exc:
            raise ApiUnreachableError(self.api_url, exc) from exc
        return written

    # -- service -----------------------------------------------------------------------

    def ready(self) -> bool:
        """Whether the API answers ``/readyz`` with 200 (no retries, no token needed)."""
        try:
            return httpx.get(f"{self.api_url}/readyz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False


def _items(body: Any) -> list[Any]:
    """A list body as is, or the ``items`` of a page."""
    if isinstance(body, dict):
        body = body.get("items", [])
    return list(body or [])
