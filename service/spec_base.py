"""What every part of a study spec shares: its strict base model and its error.

A check that spans fields raises :class:`SpecError` with the location of the field to
blame; ``StudySpec`` turns it into a pydantic error at that location, so the API answers
422 naming the field. A spec read back from the database (``StudySpec.from_stored``) is
validated with the ``stored`` context, which :func:`is_stored` reads.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo
from pydantic_core import PydanticCustomError


class SpecError(ValueError):
    """A mistake found across fields, with the location of the field to blame.

    ``kind`` is the pydantic error type it is reported as (a field's own, where the
    check validated that field on another model's behalf).
    """

    def __init__(self, loc: tuple[str | int, ...], message: str, *, kind: str = "value_error") -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message
        self.kind = kind


def not_a_model(data: Any, name: str) -> PydanticCustomError:
    """The error pydantic gives a model field whose input is not an object."""
    return PydanticCustomError(
        "model_type",
        "Input should be a valid dictionary or instance of {class_name}",
        {"class_name": name},
    )


class SpecModel(BaseModel):
    """A part of a study spec: unknown fields, NaN and infinities are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=False)


def is_stored(info: ValidationInfo) -> bool:
    """Whether this is a study's spec read back from the database (``StudySpec.from_stored``)."""
    return bool(info.context and info.context.get("stored"))
