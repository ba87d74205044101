"""Early stopping: keep the best epoch's weights, stop after ``patience`` epochs without
an improvement larger than ``min_delta``."""

from __future__ import annotations

import math
from typing import Literal


class EarlyStopping:
    """Tracks the best value of a validation metric over epochs.

    ``mode`` is ``"min"`` for losses and RMSE, ``"max"`` for accuracy. An epoch improves
    on the best when it beats it by more than ``min_delta``. ``should_stop`` turns true
    once ``patience`` epochs in a row have not improved.
    """

    def __init__(self, mode: Literal["min", "max"], patience: int = 5, min_delta: float = 0.0) -> None:
        self.mode = mode
        self.patience = patience
        self.min_delta = min_delta
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0

    def update(self, epoch: int, value: float) -> bool:
        """Record ``value`` for ``epoch``; True when it is the new best."""
        if math.isfinite(value) and self._improves(value):
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def _improves(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta
