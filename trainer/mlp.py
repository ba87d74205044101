"""The built-in MLP as a :class:`~trainer.interface.Trainer` (``"trainer": "mlp"``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainer.config import BUNDLED_DATASETS, KNOBS, TrainConfig
from trainer.interface import OnEpoch, Trainer, TrainOutcome

_REGRESSION_DATASETS = {"diabetes"}


class MlpTrainer(Trainer[TrainConfig]):
    """hone's PyTorch MLP with every technique of the lecture as a knob (``TrainConfig``)."""

    name = "mlp"
    knobs = KNOBS
    datasets = BUNDLED_DATASETS
    default_dataset = "digits"
    # What trainer.run's epochs report: *_accuracy for classification, *_rmse for regression.
    metrics = (
        "train_loss",
        "train_accuracy",
        "train_rmse",
        "val_loss",
        "val_accuracy",
        "val_rmse",
        "batch_loss",
        "lr",
        "seconds",
    )

    def classifies(self, dataset: object, fixed: Mapping[str, Any]) -> bool:
        return _task(dataset, fixed) == "classification"

    def reported_metrics(self, dataset: object, fixed: Mapping[str, Any]) -> tuple[str, ...]:
        task = _task(dataset, fixed)
        if task is None:
            return self.metrics
        other = "rmse" if task == "classification" else "accuracy"
        return tuple(m for m in self.metrics if m not in (f"train_{other}", f"val_{other}"))

    def config(self, values: Mapping[str, Any]) -> TrainConfig:
        return TrainConfig.model_validate(values)

    def run(self, config: TrainConfig, on_epoch: OnEpoch) -> TrainOutcome:
        # Imported here: the service reads this class's knobs and must not load torch.
        from trainer.run import train

        return train(config, on_epoch)


def _task(dataset: object, fixed: Mapping[str, Any]) -> str | None:
    """The task a study's data makes, or None when only loading a user's file tells."""
    task = fixed.get("task", "auto")
    if task in ("classification", "regression"):
        return str(task)
    if dataset == "synthetic":
        return "classification" if fixed.get("synthetic_classes", 2) != 0 else "regression"
    if dataset in BUNDLED_DATASETS:
        return "regression" if dataset in _REGRESSION_DATASETS else "classification"
    return None
