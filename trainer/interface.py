"""What a built-in trainer is to the rest of hone: the ``Trainer`` interface.

The service reads a trainer's knobs, datasets and config model to validate a study
before it exists; the worker calls :meth:`Trainer.run` for each trial. Everything but
``run`` must work without torch, because the service never imports it: a trainer
module imports its training loop inside ``run``.

Adding a trainer (a CNN, say) is one module with a ``Trainer`` subclass and one entry in
``trainer.registry.TRAINERS``; studies then name it as ``"trainer": "<name>"``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel

# epoch, metrics -> True when the run must stop now
OnEpoch = Callable[[int, dict[str, float]], bool]
ConfigT = TypeVar("ConfigT", bound=BaseModel)


class TrainOutcome(Protocol):
    """What one run produced: ``status`` is ``completed``, ``stopped`` or ``diverged``."""

    @property
    def status(self) -> str: ...

    @property
    def epochs(self) -> list[dict[str, float]]: ...

    @property
    def best(self) -> dict[str, float] | None: ...

    @property
    def test(self) -> dict[str, float]: ...


class Trainer(ABC, Generic[ConfigT]):
    """A built-in objective: its knobs, its datasets, the metrics it reports, how it runs.

    Attributes:
        name: what a study's ``objective.trainer`` calls it.
        knobs: the config fields a study may fix or search over.
        datasets: the dataset names it ships with (others are paths to files).
        default_dataset: the dataset of a study that names none.
        metrics: every metric it may report after an epoch (what a study's
            ``objective.metric`` may name); :meth:`reported_metrics` narrows them by task.
    """

    name: ClassVar[str]
    knobs: ClassVar[frozenset[str]]
    datasets: ClassVar[tuple[str, ...]]
    default_dataset: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]

    @abstractmethod
    def classifies(self, dataset: object, fixed: Mapping[str, Any]) -> bool:
        """Whether a study on ``dataset`` with ``fixed`` knobs is a classification task
        (its metric then defaults to ``val_accuracy``, maximised; else ``val_loss``)."""

    def reported_metrics(self, dataset: object, fixed: Mapping[str, Any]) -> tuple[str, ...]:
        """The metrics a run on ``dataset`` with ``fixed`` knobs reports every epoch (all of
        :attr:`metrics` where the task is only known when the data is loaded)."""
        return self.metrics

    @abstractmethod
    def config(self, values: Mapping[str, Any]) -> ConfigT:
        """The run's config from knob values; raises pydantic's ``ValidationError``."""

    @abstractmethod
    def run(self, config: ConfigT, on_epoch: OnEpoch) -> TrainOutcome:
        """Train as ``config`` says; ``on_epoch(epoch, metrics)`` returning True stops the run."""
