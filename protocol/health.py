"""The health answers: ``/healthz`` (the process is up) and ``/readyz`` (it can serve)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class HealthOut(BaseModel):
    """The process is up (``/healthz``)."""

    status: Literal["ok"] = "ok"


class ReadyOut(BaseModel):
    """Whether the API can serve: its database answers and its schema is current (``/readyz``)."""

    status: Literal["ready", "not ready"]
    database: bool
    schema_current: bool
    detail: str | None = None
