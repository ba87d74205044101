"""A study spec shaped like the issue's example, for the service's unit tests."""

from __future__ import annotations

import copy
from typing import Any

import pytest

EXAMPLE: dict[str, Any] = {
    "name": "digits-mlp",
    "objective": {
        "trainer": "mlp",
        "dataset": "digits",
        "metric": "val_accuracy",
        "direction": "maximize",
        "max_epochs": 30,
        "fixed": {"batch_norm": True},
    },
    "space": {
        "lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
        "hidden_units": {"type": "int", "low": 50, "high": 100},
        "n_layers": {"type": "int", "low": 2, "high": 4},
        "batch_size": {"type": "categorical", "choices": [64, 128, 256, 512]},
        "optimizer": {"type": "categorical", "choices": ["momentum", "adam"]},
        "beta": {
            "type": "float",
            "low": 0.9,
            "high": 0.999,
            "scale": "reverse_log",
            "when": {"optimizer": ["momentum"]},
        },
        "keep_prob": {"type": "float", "low": 0.5, "high": 1.0},
    },
    "sampler": {"type": "random", "seed": 7},
    "pruner": {"type": "median", "n_startup_trials": 5, "n_warmup_steps": 3},
    "rounds": [{"trials": 30}, {"trials": 15}, {"trials": 15}],
    "narrowing": {"top_fraction": 0.2, "min_top": 3, "margin": 0.1},
    "max_concurrent": 4,
}


@pytest.fixture
def example() -> dict[str, Any]:
    """A fresh, mutable copy of the issue's example spec."""
    return copy.deepcopy(EXAMPLE)
