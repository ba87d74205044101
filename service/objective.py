"""A study's objective: what a trial trains and which reported metric the study optimises.

Built-in trainers come from ``trainer.registry.TRAINERS``: a study's ``fixed`` and
``space`` keys are checked against the named trainer's knobs, and its values against the
trainer's config model, so a mistake is a 422 before the study exists.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from protocol import Direction as Direction
from protocol import Objective as WireObjective
from service.spec_base import SpecError, SpecModel
from trainer.interface import Trainer
from trainer.registry import TRAINERS

if TYPE_CHECKING:
    TrainerName = str
else:
    TrainerName = Literal[(*TRAINERS, "python")]


_ENTRYPOINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
# Objective fields a built-in study sets on ``objective``, never in ``fixed`` or ``space``.
_OBJECTIVE_KNOBS = {"dataset": "objective.dataset", "max_epochs": "objective.max_epochs"}
# Fields of the spec's objective that only the service reads (the diagnosis, the recipe's
# epochs): a grant carries the wire's Objective, which lacks them.
SERVICE_ONLY_FIELDS = frozenset({"target_error", "max_epochs_limit"})
# Without objective.max_epochs_limit, "train longer" may go to this many times max_epochs
# (two doublings): far enough to tell an under-trained network, bounded so that one
# recipe round cannot cost more than a few rounds of the study as specified.
EPOCHS_LIMIT_FACTOR = 4
_MAXIMIZED = ("accuracy", "acc", "auc", "f1", "r2", "precision", "recall", "score")
_MINIMIZED = ("loss", "error", "mse", "mae", "rmse", "perplexity")


class Objective(SpecModel, WireObjective):
    """What a trial trains and which reported metric the study optimises: the wire's
    :class:`protocol.Objective` (its fields and defaults, once) with the checks that need
    the trainer.

    ``trainer="mlp"`` runs hone's built-in trainer: ``space`` and ``fixed`` keys must be
    its knobs (``trainer.config.KNOBS``); other built-in trainers are those of
    ``trainer.registry.TRAINERS``. ``trainer="python"`` calls the user's
    ``entrypoint`` (``"package.module:function"``) with the parameters and a ``report``
    callable. ``metric`` and ``direction`` default by task: ``val_accuracy``/maximize for
    classification datasets, ``val_loss``/minimize otherwise.
    """

    model_config = SpecModel.model_config

    trainer: TrainerName = "mlp"  # the registry's names and "python", checked at run time
    # Only the service reads it (GET /diagnosis), so it is not on the wire's Objective.
    # Service-only fields are listed in SERVICE_ONLY_FIELDS.
    target_error: float | None = Field(
        default=None,
        ge=0,
        description="The error the diagnosis measures avoidable bias against (Bayes or human-level), "
        "in the metric's error units: 1 − score for a maximized metric, the value for a minimized "
        "one; absent: 0",
    )

    # Service-only too: the wire carries a round's max_epochs, already raised.
    max_epochs_limit: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description='The most epochs a round may train: the basic recipe\'s "train longer" (and '
        "POST /rounds' max_epochs) stops here; absent: 4 × max_epochs",
    )

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        trainer = _built_in(data.get("trainer", "mlp"))
        if trainer is not None and data.get("dataset") is None:
            data["dataset"] = trainer.default_dataset
        if "metric" not in data:
            if _is_classification(data):
                data.setdefault("metric", "val_accuracy")
                data.setdefault("direction", "maximize")
            else:
                data.setdefault("metric", "val_loss")
                data.setdefault("direction", "minimize")
        elif "direction" not in data and isinstance(data["metric"], str):
            inferred = _infer_direction(data["metric"])
            if inferred is not None:
                data["direction"] = inferred
        return data

    @model_validator(mode="after")
    def _trainer_fields(self) -> Objective:
        if self.trainer == "python":
            if self.entrypoint is None:
                raise SpecError(
                    ("entrypoint",), 'the python trainer needs "entrypoint": "package.module:function"'
                )
            if not _ENTRYPOINT.match(self.entrypoint):
                raise SpecError(
                    ("entrypoint",), f"{self.entrypoint!r} is not of the form package.module:function"
                )
        elif self.entrypoint is not None:
            raise SpecError(("entrypoint",), 'entrypoint is only used with "trainer": "python"')
        _check_finite(self.fixed, ("fixed",))
        if self.direction == "maximize" and self.target_error is not None and self.target_error > 1:
            raise SpecError(
                ("target_error",),
                f"must be at most 1: a maximized metric's error is 1 − {self.metric} "
                f"(got {self.target_error})",
            )
        if self.max_epochs_limit is not None and self.max_epochs_limit < self.max_epochs:
            raise SpecError(
                ("max_epochs_limit",),
                f"must be at least objective.max_epochs ({self.max_epochs}), got {self.max_epochs_limit}",
            )
        if self.built_in is not None:
            for key in self.fixed:
                self.check_knob(key, ("fixed", key))
            self.train_config()
        return self

    @property
    def epochs_limit(self) -> int:
        """The most epochs a round may train (``max_epochs_limit``, else 4 × ``max_epochs``)."""
        if self.max_epochs_limit is not None:
            return self.max_epochs_limit
        return min(EPOCHS_LIMIT_FACTOR * self.max_epochs, 100_000)

    @property
    def built_in(self) -> Trainer[Any] | None:
        """The built-in trainer this objective runs (None for a python entrypoint)."""
        return TRAINERS.get(self.trainer)

    def check_knob(self, key: str, loc: tuple[str | int, ...]) -> None:
        """Raises SpecError at ``loc`` unless ``key`` is a knob of the built-in trainer."""
        trainer = self.built_in
        assert trainer is not None
        if key in _OBJECTIVE_KNOBS:
            raise SpecError(loc, f"set {key} as {_OBJECTIVE_KNOBS[key]}, not here")
        if key not in trainer.knobs:
            known = sorted(trainer.knobs - set(_OBJECTIVE_KNOBS))
            raise SpecError(loc, unknown_name(key, known, f"a knob of the {trainer.name} trainer"))

    def check_metric(self) -> None:
        """Raises SpecError at ``metric`` unless the built-in trainer reports it every epoch
        for this dataset (a study optimising a metric nobody reports can only fail)."""
        trainer = self.built_in
        assert trainer is not None
        reported = trainer.reported_metrics(self.dataset, self.fixed)
        if self.metric not in reported:
            what = f"a metric the {trainer.name} trainer reports on {self.dataset!r}"
            raise SpecError(("metric",), unknown_name(self.metric, list(reported), what))

    def train_config(self, params: Mapping[str, Any] | None = None) -> BaseModel:
        """The built-in trainer's config for ``params`` on top of ``fixed``; raises SpecError."""
        trainer = self.built_in
        assert trainer is not None
        values = self.config_values(dict(params or {}))
        try:
            config: BaseModel = trainer.config(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = first["loc"][0] if first["loc"] else None
            where: tuple[str | int, ...] = ("fixed",)
            if field == "dataset" and not (params and field in params):
                where = ("dataset",)
                if self.dataset not in trainer.datasets:
                    what = "a bundled dataset nor a path to a .csv, .parquet or .npz file"
                    message = unknown_name(str(self.dataset), list(trainer.datasets), what)
                    raise SpecError(where, message) from None
            elif isinstance(field, str) and params and field in params:
                where = ("space", field)
            elif isinstance(field, str) and field in self.fixed:
                where = ("fixed", field)
            raise SpecError(where, f"invalid for the {trainer.name} trainer: {first['msg']}") from None
        return config


def unknown_name(name: str, known: list[str], what: str) -> str:
    """The message for a name that is not among ``known``: a near miss first, then all of them."""
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{name!r} is not {what}{hint} (known: {', '.join(known)})"


def _built_in(name: object) -> Trainer[Any] | None:
    return TRAINERS.get(name) if isinstance(name, str) else None


def _is_classification(data: Mapping[str, Any]) -> bool:
    trainer = _built_in(data.get("trainer", "mlp"))
    if trainer is None:
        return False
    fixed = data.get("fixed") if isinstance(data.get("fixed"), dict) else {}
    assert isinstance(fixed, dict)
    return trainer.classifies(data.get("dataset"), fixed)


def _infer_direction(metric: str) -> Direction | None:
    name = metric.lower()
    if name.endswith(_MINIMIZED):
        return "minimize"
    if name.endswith(_MAXIMIZED):
        return "maximize"
    return None


def _check_finite(value: Any, loc: tuple[str | int, ...]) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(loc, "NaN and infinite numbers are not allowed")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, (*loc, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_finite(item, (*loc, index))
