"""Whole runs of ``train``: metrics, callbacks, determinism, divergence, best weights."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_wine

from trainer import TrainResult, train
from trainer.config import TrainConfig
from trainer.data import prepare_data
from trainer.errors import DeviceError, TrainerError
from trainer.run import train_eval_rows

CLASSIFICATION_KEYS = {
    "batch_loss",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "lr",
    "seconds",
}
REGRESSION_KEYS = {"batch_loss", "train_loss", "train_rmse", "val_loss", "val_rmse", "lr", "seconds"}


def _without_time(result: TrainResult) -> list[dict[str, float]]:
    return [{k: v for k, v in e.items() if k != "seconds"} for e in result.epochs]


def test_the_default_config_reaches_96_percent_test_accuracy_on_digits() -> None:
    result = train(TrainConfig(dataset="digits"))
    assert result.status == "completed"
    assert result.test["test_accuracy"] >= 0.96


def test_a_run_is_deterministic_for_a_seed_on_cpu() -> None:
    config = TrainConfig(dataset="wine", batch_norm=True, keep_prob=0.8, max_epochs=4)
    first, second = train(config), train(config)
    assert _without_time(first) == _without_time(second)
    assert first.test == second.test
    other = train(config.model_copy(update={"seed": 1}))
    assert _without_time(other) != _without_time(first)


def test_report_gets_exactly_the_documented_metrics_and_can_stop_the_run() -> None:
    seen: list[tuple[int, dict[str, float]]] = []

    def report(epoch: int, metrics: dict[str, float]) -> bool:
        seen.append((epoch, metrics))
        return epoch == 3

    result = train(TrainConfig(dataset="iris", max_epochs=10), report)
    assert result.status == "stopped"
    assert [epoch for epoch, _ in seen] == [1, 2, 3]
    assert all(set(metrics) == CLASSIFICATION_KEYS for _, metrics in seen)
    assert [e["epoch"] for e in result.epochs] == [1, 2, 3]
    assert not result.stopped_early


def test_a_regression_run_reports_rmse_in_the_targets_units() -> None:
    result = train(TrainConfig(dataset="diabetes", max_epochs=5))
    assert all(set(e) == REGRESSION_KEYS | {"epoch"} for e in result.epochs)
    splits = prepare_data(TrainConfig(dataset="diabetes"))
    assert splits.target_scaler is not None
    last = result.epochs[-1]
    assert last["val_rmse"] == pytest.approx(math.sqrt(last["val_loss"]) * float(splits.target_scaler.std))
    assert 40 < last["val_rmse"] < 120  # diabetes targets spread over 25…346
    assert set(result.test) == {"test_loss", "test_rmse"}


def test_each_epoch_runs_at_the_scheduled_learning_rate() -> None:
    config = TrainConfig(dataset="iris", optimizer="sgd", lr=0.2, lr_decay=1.0, max_epochs=4)
    rates = [e["lr"] for e in train(config).epochs]
    assert rates == pytest.approx([0.1, 0.2 / 3, 0.05, 0.04])


def test_a_diverging_run_ends_with_status_diverged_not_an_exception() -> None:
    result = train(TrainConfig(dataset="digits", optimizer="sgd", lr=50, l2=0, max_epochs=5))
    assert result.status == "diverged"
    assert result.best_epoch is None and result.test == {}
    assert not math.isfinite(result.epochs[-1]["train_loss"])
    as_json = result.to_json()
    assert as_json["epochs"][-1]["train_loss"] is None
    json.loads(json.dumps(as_json, allow_nan=False))


def test_the_training_error_is_measured_in_eval_mode_on_the_end_of_epoch_weights() -> None:
    # Heavy dropout and batch norm: the mean mini-batch loss as trained differs from the
    # clean one, which must equal the fitted network's eval-mode score on the training rows.
    config = TrainConfig(dataset="wine", keep_prob=0.3, batch_norm=True, max_epochs=1)
    result = train(config)
    assert result.model is not None
    splits = prepare_data(config)
    network = result.model.network.eval()
    with torch.no_grad():
        output = network(torch.as_tensor(splits.x_train))
    y = torch.as_tensor(splits.y_train)
    [epoch] = result.epochs
    assert epoch["train_loss"] == pytest.approx(F.cross_entropy(output, y).item(), rel=1e-5)
    assert epoch["train_accuracy"] == pytest.approx((output.argmax(1) == y).float().mean().item())
    assert epoch["batch_loss"] != pytest.approx(epoch["train_loss"], rel=1e-3)
    assert result.train_rows_scored == result.train_rows == len(splits.x_train)


def test_a_large_training_split_is_scored_on_a_fixed_sample_that_the_output_states() -> None:
    config = TrainConfig(dataset="digits", train_eval_rows=100, max_epochs=2)
    result = train(config)
    assert result.to_json()["train_measured_on"] == {"rows": 100, "of": result.train_rows, "sample": True}
    assert result.model is not None
    splits = prepare_data(config)
    rows = train_eval_rows(len(splits.x_train), 100, config.split_seed)
    assert rows is not None and len(set(rows)) == 100
    assert rows == train_eval_rows(len(splits.x_train), 100, config.split_seed)  # fixed
    network = result.model.network.eval()
    with torch.no_grad():
        output = network(torch.as_tensor(splits.x_train[rows]))
    accuracy = (output.argmax(1) == torch.as_tensor(splits.y_train[rows])).float().mean().item()
    assert result.epochs[-1]["train_accuracy"] == pytest.approx(accuracy)


def _val_loss_of(result: TrainResult, config: TrainConfig) -> float:
    assert result.model is not None
    splits = prepare_data(config)
    network = result.model.network.eval()
    with torch.no_grad():
        logits = network(torch.as_tensor(splits.x_val))
    return F.cross_entropy(logits, torch.as_tensor(splits.y_val)).item()


def test_early_stopping_stops_after_patience_and_restores_the_best_epoch() -> None:
    config = TrainConfig(dataset="breast_cancer", early_stopping=True, patience=3, lr=0.01, l2=0)
    result = train(config)
    losses = [e["val_loss"] for e in result.epochs]
    assert result.stopped_early and result.status == "completed"
    assert result.best_epoch == int(np.argmin(losses)) + 1
    assert len(result.epochs) == result.best_epoch + 3 < config.max_epochs
    assert result.best == result.epochs[result.best_epoch - 1]
    restored = _val_loss_of(result, config)
    assert restored == pytest.approx(losses[result.best_epoch - 1], abs=1e-5)
    assert restored != pytest.approx(losses[-1], abs=1e-3)


def test_best_weights_are_restored_for_the_test_even_without_early_stopping() -> None:
    config = TrainConfig(dataset="breast_cancer", lr=0.01, l2=0, max_epochs=12)
    result = train(config)
    assert not result.stopped_early and len(result.epochs) == 12
    assert result.best_epoch is not None and result.best_epoch < 12
    assert _val_loss_of(result, config) == pytest.approx(result.best["val_loss"], abs=1e-5)  # type: ignore[index]


def test_monitoring_accuracy_picks_the_epoch_with_the_best_accuracy() -> None:
    result = train(TrainConfig(dataset="wine", monitor="val_accuracy", max_epochs=8))
    accuracies = [e["val_accuracy"] for e in result.epochs]
    assert result.best_epoch == accuracies.index(max(accuracies)) + 1


def test_a_monitor_of_the_other_task_is_a_trainer_error() -> None:
    with pytest.raises(TrainerError, match="val_rmse"):
        train(TrainConfig(dataset="iris", monitor="val_rmse"))


def test_to_json_has_the_cli_shape() -> None:
    result = train(TrainConfig(dataset="iris", max_epochs=2))
    data = json.loads(json.dumps(result.to_json()))
    assert list(data) == [
        "epochs",
        "best_epoch",
        "stopped_early",
        "status",
        "test",
        "train_measured_on",
        "config",
    ]
    assert list(data["epochs"][0]) == [
        "epoch",
        "lr",
        "batch_loss",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "seconds",
    ]
    assert data["train_measured_on"] == {"rows": result.train_rows, "of": result.train_rows, "sample": False}
    assert set(data["test"]) == {"test_loss", "test_accuracy"}
    assert TrainConfig.model_validate(data["config"]) == result.config


def test_the_fitted_model_predicts_raw_rows_with_the_stored_normalization() -> None:
    result = train(TrainConfig(dataset="wine", max_epochs=20))
    assert result.model is not None
    wine = load_wine()
    accuracy = float(np.mean(result.model.predict(wine.data) == wine.target))
    assert accuracy > 0.9


@pytest.mark.parametrize("batch_size", [1, 10_000])
def test_stochastic_and_full_batch_gradient_descent_both_train(batch_size: int) -> None:
    result = train(TrainConfig(dataset="iris", optimizer="sgd", lr=0.05, batch_size=batch_size, max_epochs=3))
    assert result.status == "completed"
    assert result.epochs[-1]["train_loss"] < result.epochs[0]["train_loss"] * 1.5


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "rmsprop", "adam"])
def test_every_optimizer_lowers_the_training_loss(optimizer: str) -> None:
    lr = {"sgd": 0.1, "momentum": 0.1, "rmsprop": 0.003, "adam": 0.003}[optimizer]
    config = TrainConfig(dataset="wine", optimizer=optimizer, lr=lr, max_epochs=6)  # type: ignore[arg-type]
    losses = [e["train_loss"] for e in train(config).epochs]
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_cuda_without_a_gpu_is_a_device_error() -> None:
    with pytest.raises(DeviceError, match="no usable CUDA GPU"):
        train(TrainConfig(dataset="iris", device="cuda"))


def test_importing_the_config_does_not_import_torch() -> None:
    code = "import sys, trainer.config, trainer; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
