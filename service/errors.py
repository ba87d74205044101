"""Domain errors that routes turn into HTTP statuses (see ``service.app``).

Domain functions raise these instead of ``HTTPException`` so they stay plain functions,
testable without HTTP.
"""

from __future__ import annotations

from typing import Any


class HoneError(Exception):
    """Base of hone's domain errors; ``status`` is the HTTP status it maps to."""

    status = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(HoneError):
    status = 404


class Conflict(HoneError):
    status = 409


class InvalidInput(HoneError):
    """A request that parsed but is wrong in a field; ``loc`` names it, as pydantic's 422s do."""

    status = 422

    def __init__(self, loc: tuple[str | int, ...], detail: str) -> None:
        super().__init__(detail)
        self.loc = loc

    def errors(self) -> list[dict[str, Any]]:
        return [{"loc": list(self.loc), "msg": self.detail, "type": "value_error"}]
