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
    metrics = ("train_loss", "val_loss", "val_accuracy", "val_rmse", "lr", "seconds")

    def classifies(self, dataset: object, fixed: Mapping[str, Any]) -> bool:
        task = fixed.get("task", "auto")
        if task in ("classification", "regression"):
            return bool(task == "classification")
        if dataset == "synthetic":
            return bool(fixed.get("synthetic_classes", 2) != 0)
        return dataset in BUNDLED_DATASETS and dataset not in _REGRESSION_DATASETS

    def config(self, values: Mapping[str, Any]) -> TrainConfig:
        return TrainConfig.model_validate(values)

    def run(self, config: TrainConfig, on_epoch: OnEpoch) -> TrainOutcome:
        # Imported here: the service reads this class's knobs and must not load torch.
        from trainer.run import train

        return train(config, on_epoch)
