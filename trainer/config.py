"""The trainer's configuration: every knob of the lecture, validated without torch.

The service imports this module to validate a study's ``fixed`` values and ``space``
keys for the built-in ``mlp`` trainer, so it must never import torch (an import-linter
contract keeps it that way).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Optimizer = Literal["sgd", "momentum", "rmsprop", "adam"]
Activation = Literal["relu", "leaky_relu", "gelu", "tanh"]
Init = Literal["he", "xavier", "glorot", "default"]
LrSchedule = Literal["inverse_time", "exponential", "step", "none"]
Task = Literal["auto", "classification", "regression"]
Monitor = Literal["val_loss", "val_accuracy", "val_rmse"]
BUNDLED_DATASETS = ("digits", "breast_cancer", "wine", "iris", "diabetes", "synthetic")
DATA_FILE_SUFFIXES = (".csv", ".parquet", ".npz")


class TrainConfig(BaseModel):
    """One training run of the built-in MLP. Field names are the public knob names."""

    model_config = ConfigDict(extra="forbid")

    # data
    dataset: str = Field(
        default="digits", description="Bundled name, 'synthetic', or a path to .csv/.parquet/.npz"
    )
    target: str | None = Field(default=None, description="Target column of a user file ('y' in .npz)")
    task: Task = Field(
        default="auto", description="Classification or regression; auto infers it from the target"
    )
    synthetic_samples: int = Field(
        default=10_000, ge=10, le=10_000_000, description="Rows of the synthetic dataset"
    )
    synthetic_features: int = Field(
        default=20, ge=1, le=10_000, description="Features of the synthetic dataset"
    )
    synthetic_classes: int = Field(
        default=2, ge=0, le=1000, description="Classes of the synthetic dataset; 0 makes a regression target"
    )
    val_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="Share of the rows held out for validation"
    )
    test_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="Share of the rows held out for the final test"
    )
    normalize_inputs: bool = Field(
        default=True, description="Standardize features with the training split's μ and σ"
    )
    split_seed: int = Field(
        default=0,
        ge=0,
        le=2**32 - 1,
        description="Seed of the train/validation/test split and of synthetic data; kept "
        "apart from 'seed' so that trials of a search share one split",
    )

    # network
    n_layers: int = Field(default=2, ge=1, le=64, description="Number of hidden layers")
    hidden_units: int | list[int] = Field(
        default=128, description="One width for every hidden layer, or one per layer"
    )
    activation: Activation = Field(default="relu", description="Activation g of the hidden layers")
    init: Init = Field(
        default="he", description="Weight init: he √(2/n[l−1]), xavier √(1/n[l−1]), glorot √(2/(n[l−1]+n[l]))"
    )
    batch_norm: bool = Field(default=False, description="Batch norm between each hidden z and g(z)")
    keep_prob: float | list[float] = Field(
        default=1.0, description="Inverted-dropout keep probability, one or per layer"
    )

    # optimisation
    optimizer: Optimizer = Field(default="adam", description="Update rule (the lecture's formulas)")
    lr: float = Field(default=3e-3, gt=0, le=100, description="Learning rate α (α0 of the schedule)")
    beta: float = Field(default=0.9, ge=0, lt=1, description="Momentum / RMSprop β")
    beta1: float = Field(default=0.9, ge=0, lt=1, description="Adam β1 (momentum term)")
    beta2: float = Field(default=0.999, ge=0, lt=1, description="Adam β2 (RMSprop term)")
    eps: float = Field(default=1e-8, gt=0, le=1, description="ε inside the root of RMSprop and Adam")
    lr_schedule: LrSchedule = Field(
        default="inverse_time", description="Learning-rate decay: inverse_time is α0/(1 + decay·epoch)"
    )
    lr_decay: float = Field(default=0.0, ge=0, le=1e6, description="decay-rate of the schedule (0: constant)")
    lr_step_size: int = Field(default=10, ge=1, description="Epochs per step of the 'step' schedule")
    batch_size: int = Field(
        default=64, ge=1, le=10_000_000, description="Mini-batch size: 1 is stochastic, ≥ m is batch GD"
    )
    l2: float = Field(
        default=0.5, ge=0, le=1e6, description="λ of the L2 penalty λ/(2m)·Σ‖W‖², m the mini-batch size"
    )
    l1: float = Field(default=0.0, ge=0, le=1e6, description="λ of the L1 penalty λ/(2m)·Σ|w|")

    # run
    max_epochs: int = Field(default=30, ge=1, le=100_000, description="Epochs to train at most")
    early_stopping: bool = Field(
        default=False, description="Stop after `patience` epochs without improvement of `monitor`"
    )
    patience: int = Field(default=5, ge=1, description="Epochs without improvement before early stopping")
    min_delta: float = Field(default=0.0, ge=0, description="Smallest change that counts as an improvement")
    monitor: Monitor = Field(
        default="val_loss",
        description="Validation metric that picks the best epoch and drives early stopping",
    )
    train_eval_rows: int = Field(
        default=10_000,
        ge=0,
        le=10_000_000,
        description="Training rows scored in eval mode each epoch for the clean training error "
        "(train_loss, train_accuracy/train_rmse): a fixed sample when the split is larger; 0 scores all",
    )
    seed: int = Field(
        default=0, ge=0, le=2**32 - 1, description="Seed of initialization, shuffling and dropout"
    )
    device: str = Field(default="cpu", description="'cpu', 'cuda', 'cuda:N' or 'auto'")
    cpu_threads: int = Field(
        default=0,
        ge=0,
        le=1024,
        description="Torch threads on the CPU; 0 picks 1 for small networks, torch's default for large",
    )
    amp: bool = Field(default=False, description="bf16 autocast on CUDA")

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value: str) -> str:
        if value in BUNDLED_DATASETS or Path(value).suffix.lower() in DATA_FILE_SUFFIXES:
            return value
        raise ValueError(
            f"unknown dataset {value!r}: use one of {', '.join(BUNDLED_DATASETS)} "
            "or a path to a .csv, .parquet or .npz file"
        )

    @field_validator("synthetic_classes")
    @classmethod
    def _not_one_class(cls, value: int) -> int:
        if value == 1:
            raise ValueError("0 means a regression target; classification needs at least 2 classes")
        return value

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        if re.fullmatch(r"cpu|auto|cuda(:\d+)?", value):
            return value
        raise ValueError(f"unknown device {value!r}: use 'cpu', 'cuda', 'cuda:N' or 'auto'")

    @field_validator("hidden_units")
    @classmethod
    def _positive_units(cls, value: int | list[int]) -> int | list[int]:
        units = value if isinstance(value, list) else [value]
        if not units or any(u < 1 or u > 100_000 for u in units):
            raise ValueError("every width must be between 1 and 100000")
        return value

    @field_validator("keep_prob")
    @classmethod
    def _valid_keep_prob(cls, value: float | list[float]) -> float | list[float]:
        probs = value if isinstance(value, list) else [value]
        if not probs or any(not 0 < p <= 1 for p in probs):
            raise ValueError("every keep_prob must be in (0, 1]")
        return value

    @model_validator(mode="after")
    def _per_layer_lengths(self) -> TrainConfig:
        for name in ("hidden_units", "keep_prob"):
            value = getattr(self, name)
            if isinstance(value, list) and len(value) != self.n_layers:
                raise ValueError(f"{name} has {len(value)} entries but n_layers is {self.n_layers}")
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError("val_fraction + test_fraction must leave at least 10% for training")
        return self

    def layer_widths(self) -> list[int]:
        if isinstance(self.hidden_units, list):
            return list(self.hidden_units)
        return [self.hidden_units] * self.n_layers

    def layer_keep_probs(self) -> list[float]:
        if isinstance(self.keep_prob, list):
            return list(self.keep_prob)
        return [self.keep_prob] * self.n_layers

    def is_user_file(self) -> bool:
        return (
            self.dataset not in BUNDLED_DATASETS and Path(self.dataset).suffix.lower() in DATA_FILE_SUFFIXES
        )


# The knobs a study may fix or search over for the ``mlp`` trainer.
KNOBS: frozenset[str] = frozenset(TrainConfig.model_fields)
