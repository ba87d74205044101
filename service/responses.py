"""What every route answers on error: :class:`ErrorOut`, and the ``responses=`` that
document each route's error statuses in the OpenAPI schema.

The models of successful answers and of request bodies are the wire contract, in
:mod:`protocol`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorOut(BaseModel):
    """Every error answer: ``detail`` is a message, or pydantic's list for 422s."""

    detail: str | list[dict[str, Any]]


_ERROR_TEXT = {
    401: "Missing, unknown or revoked bearer token",
    403: "The token's role may not do this",
    404: "No such study, trial or round",
    409: "Conflicts with the study's state (name in use, stopped study, too few trials)",
    422: "A field is invalid; `detail[].loc` names it",
    503: "The database is unavailable; retry after `Retry-After` seconds",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: each error status it can answer, with :class:`ErrorOut`."""
    return {
        status: {"model": ErrorOut, "description": _ERROR_TEXT[status]}
        for status in (401, 403, 503, *statuses)
    }
