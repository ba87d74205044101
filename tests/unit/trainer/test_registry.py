"""The trainer registry: the MLP behind ``"trainer": "mlp"``."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from trainer.config import BUNDLED_DATASETS, KNOBS, TrainConfig
from trainer.registry import TRAINERS


def test_the_mlp_is_registered_with_its_knobs_and_datasets() -> None:
    mlp = TRAINERS["mlp"]
    assert mlp.name == "mlp"
    assert mlp.knobs == KNOBS
    assert mlp.datasets == BUNDLED_DATASETS
    assert mlp.default_dataset in mlp.datasets
    assert {"val_loss", "val_accuracy"} <= set(mlp.metrics)


def test_the_mlp_config_is_its_train_config_and_refuses_bad_values() -> None:
    mlp = TRAINERS["mlp"]
    assert mlp.config({"lr": 0.1}) == TrainConfig(lr=0.1)
    with pytest.raises(ValidationError):
        mlp.config({"lr": -1})


@pytest.mark.parametrize(
    ("dataset", "fixed", "expected"),
    [
        ("digits", {}, True),
        ("diabetes", {}, False),
        ("synthetic", {}, True),
        ("synthetic", {"synthetic_classes": 0}, False),
        ("data.csv", {}, False),
        ("data.csv", {"task": "classification"}, True),
    ],
)
def test_the_mlp_says_which_studies_classify(dataset: str, fixed: dict[str, object], expected: bool) -> None:
    assert TRAINERS["mlp"].classifies(dataset, fixed) is expected


def test_the_mlp_runs_through_the_registry() -> None:
    mlp = TRAINERS["mlp"]
    epochs: list[int] = []
    result = mlp.run(
        mlp.config({"dataset": "iris", "max_epochs": 2, "hidden_units": 8}),
        lambda epoch, metrics: bool(epochs.append(epoch)),
    )
    assert result.status == "completed" and epochs == [1, 2]
    assert result.best is not None and "val_accuracy" in result.best
