"""What every part of a study spec shares: its strict base model and its error.

A check that spans fields raises :class:`SpecError` with the location of the field to
blame; ``StudySpec`` turns it into a pydantic error at that location, so the API answers
422 naming the field. A spec read back from the database (``StudySpec.from_stored``) is
validated with the ``stored`` context, which :func:`is_stored` reads.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, ValidationInfo, create_model
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


V = TypeVar("V", bound=BaseModel)


class Variants(Generic[V]):
    """The variants of one part of a spec (samplers, pruners), keyed by their ``type``.

    :meth:`typed` is what reading one shares: an object is required, a missing ``type``
    is the default variant's, an unknown one gets pydantic's message listing the known
    ones, and options that belong to another variant are found (what becomes of them is
    the part's own rule).
    """

    def __init__(self, union: Any, *, default: type[V], name: str) -> None:
        self.by_type: dict[str, type[V]] = {v.model_fields["type"].default: v for v in get_args(union)}
        self._default = default.model_fields["type"].default
        self._name = name
        kinds: Any = Literal.__getitem__(tuple(self.by_type))
        self._kind = create_model(f"{name}Type", __base__=SpecModel, type=(kinds, ...))

    def options(self, kind: str) -> set[str]:
        """The options (fields but ``type``) of the variant named ``kind``."""
        return set(self.by_type[kind].model_fields) - {"type"}

    def typed(self, data: Any) -> tuple[dict[str, Any], str, list[tuple[str, list[str]]]]:
        """``data`` with its ``type`` filled, that type, and each option of another variant
        with the variants that have it (options of none are left for pydantic to refuse)."""
        if not isinstance(data, dict):
            raise not_a_model(data, self._name)
        data = {"type": self._default, **data}
        kind = data["type"]
        if not isinstance(kind, str) or kind not in self.by_type:
            self._kind.model_validate({"type": kind})  # raises, naming the known types
        foreign = []
        for option in sorted(set(data) - self.options(kind) - {"type"}):
            users = [other for other in self.by_type if option in self.options(other)]
            if users:
                foreign.append((option, users))
        return data, kind, foreign


def is_stored(info: ValidationInfo) -> bool:
    """Whether this is a study's spec read back from the database (``StudySpec.from_stored``)."""
    return bool(info.context and info.context.get("stored"))
