"""Learning-rate decay: the learning rate α of each epoch, epochs counted from 1.

The lecture's schedule is ``inverse_time``: α = α0 / (1 + decay-rate · epoch-num), so with
α0 = 0.2 and decay-rate 1 epochs 1–4 run at 0.1, 0.0667, 0.05, 0.04. The others use the
same decay-rate ``d`` so that ``d = 0`` always means a constant rate:

- ``exponential``: α = α0 · e^(−d · epoch-num) (the lecture's 0.95^epoch-num · α0 is
  d = −ln 0.95 ≈ 0.0513);
- ``step``: α = α0 / (1 + d)^⌊(epoch-num − 1) / step-size⌋, a staircase that divides the
  rate by 1 + d every ``step_size`` epochs (d = 1 halves it);
- ``none``: α = α0.
"""

from __future__ import annotations

import math

from trainer.config import LrSchedule


def learning_rate(schedule: LrSchedule, lr0: float, decay: float, epoch: int, step_size: int = 10) -> float:
    """The learning rate of ``epoch`` (1-based) under ``schedule``."""
    if epoch < 1:
        raise ValueError(f"epochs are counted from 1, got {epoch}")
    if schedule == "inverse_time":
        return lr0 / (1.0 + decay * epoch)
    if schedule == "exponential":
        return lr0 * math.exp(-decay * epoch)
    if schedule == "step":
        return lr0 / (1.0 + decay) ** ((epoch - 1) // step_size)
    return lr0
